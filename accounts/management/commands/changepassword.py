"""Django's `changepassword`, which also revokes the user's API tokens.

Listed before django.contrib.auth in INSTALLED_APPS, so this one is found first.
"""

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import changepassword

from accounts.services import user_api_tokens_revoke


class Command(changepassword.Command):
    help = f"{changepassword.Command.help} Revokes the user's API tokens."

    def handle(self, *args, **options) -> str:
        changed = super().handle(*args, **options)
        # The same user the parent changed: it raised CommandError had there been none.
        username = options["username"] or getpass.getuser()
        user_model = get_user_model()
        user = user_model._default_manager.using(options["database"]).get(**{user_model.USERNAME_FIELD: username})
        revoked = user_api_tokens_revoke(user=user)
        return f"{changed}\nRevoked {revoked} API token{'' if revoked == 1 else 's'} of that user."
