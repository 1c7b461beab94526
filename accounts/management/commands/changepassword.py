"""Django's `changepassword`, which also revokes the user's API tokens and lifts the username's
login lock (the lockout message tells users to ask an administrator for a new password).

Listed before django.contrib.auth in INSTALLED_APPS, so this one is found first.
"""

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import changepassword

from accounts.services import user_api_tokens_revoke, user_password_set_by_admin


class Command(changepassword.Command):
    help = f"{changepassword.Command.help} Revokes the user's API tokens and lifts the account's login lock."

    def handle(self, *args, **options) -> str:
        changed = super().handle(*args, **options)
        # The same user the parent changed: it raised CommandError had there been none.
        username = options["username"] or getpass.getuser()
        user = get_user_model()._default_manager.db_manager(options["database"]).get_by_natural_key(username)
        user_password_set_by_admin(user=user)
        revoked = user_api_tokens_revoke(user=user)
        return f"{changed}\nRevoked {revoked} API token{'' if revoked == 1 else 's'} of that user."
