import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import changepassword

from accounts.services import user_password_set_by_admin


class Command(changepassword.Command):
    """Django's `changepassword`, which also lifts the account's login lock: the lockout message
    tells users to ask an administrator for a new password. (Found before django.contrib.auth's
    because `accounts` comes first in INSTALLED_APPS.)"""

    def handle(self, *args, **options) -> str:
        done = super().handle(*args, **options)
        # The parent found the user by this name (or the login name) and saved the new password.
        username = options["username"] or getpass.getuser()
        users = get_user_model()._default_manager.db_manager(options["database"])
        user = users.get_by_natural_key(username)
        user_password_set_by_admin(user=user)
        return done
