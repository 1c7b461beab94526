"""The login forms of the site and of the admin, with failed logins throttled; password forms that revoke API tokens."""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AdminPasswordChangeForm, AuthenticationForm, PasswordChangeForm

from accounts.login_throttle import client_address, login_attempt_start, login_attempt_succeeded
from accounts.services import user_api_tokens_revoke


class LoginThrottleMixin:
    """Refuses a login while its username or address is throttled; counts each failure."""

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        if not (username and self.cleaned_data.get("password")):
            # No password will be checked (the field's own error is shown): neither a try nor a success.
            return super().clean()
        address = client_address(self.request)
        if not login_attempt_start(username=username, address=address):
            minutes = max(1, round(settings.LOGIN_THROTTLE_SECONDS / 60))
            raise forms.ValidationError(
                f"Too many failed logins for this account or from this address. Try again in {minutes} "
                "minutes, or ask an administrator to set a new password for the account (which lifts the "
                "account's lock, not the address's).",
                code="login_throttled",
            )
        # A wrong password raises here and the attempt stays counted as a failure.
        cleaned = super().clean()
        login_attempt_succeeded(username=username, address=address)
        return cleaned


class ThrottledAuthenticationForm(LoginThrottleMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(LoginThrottleMixin, AdminAuthenticationForm):
    pass


class PasswordChangeRevokesTokensMixin:
    """A new password revokes the user's API tokens: whoever knew the old one may have made or copied one,
    and changing a password is how a user shuts out someone who had it."""

    def save(self, commit: bool = True):
        user = super().save(commit=commit)
        user_api_tokens_revoke(user=user)
        return user


class TokenRevokingPasswordChangeForm(PasswordChangeRevokesTokensMixin, PasswordChangeForm):
    pass


class TokenRevokingAdminPasswordChangeForm(PasswordChangeRevokesTokensMixin, AdminPasswordChangeForm):
    pass
