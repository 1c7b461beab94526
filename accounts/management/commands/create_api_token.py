from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME; the token is the last line of stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Days the token is valid; default API_TOKEN_DAYS; 0: it never expires.",
        )

    def handle(self, *args, username: str, name: str, days: int | None, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        if days is not None and days < 0:
            raise CommandError(f"--days must be 0 (never expires) or more, not {days}.")
        token, raw_token = api_token_create(user=user, name=name, days=days)
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M %Z}" if token.expires_at else "never expires"
        self.stderr.write(f"Created token {token.key_prefix}… for {username} ({expiry}). It is shown once:")
        self.stdout.write(raw_token)
