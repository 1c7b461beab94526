import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create the superuser named by DJANGO_SUPERUSER_USERNAME/PASSWORD/EMAIL unless it exists; "
        "fail when that name belongs to a user who is not a superuser, or the password is too weak."
    )

    def handle(self, *args, **options) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if not username or not password:
            raise CommandError("Set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD.")
        User = get_user_model()
        existing = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        if existing is not None:
            if not existing.is_superuser:
                # Promoting an account because a deployment variable names it would hand every
                # right to whoever holds it: an administrator decides that in the admin.
                raise CommandError(
                    f"User {username!r} exists but is not a superuser; it was left as it is. Choose another "
                    "DJANGO_SUPERUSER_USERNAME, or make this user a superuser in the admin."
                )
            self.stdout.write(f"Superuser {username!r} already exists.")
            return
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        try:
            validate_password(password, User(**{User.USERNAME_FIELD: username, "email": email}))
        except ValidationError as exc:
            raise CommandError(
                "DJANGO_SUPERUSER_PASSWORD is refused: " + " ".join(exc.messages) + " No user was created."
            ) from None
        User._default_manager.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"Created superuser {username!r}.")
