"""The login forms of the site and of the admin, with failed logins throttled."""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from accounts.login_throttle import client_address, login_failure_record, login_failures_clear, login_throttled


class LoginThrottleMixin:
    """Refuses a login while its username or address is throttled; counts each failure."""

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        if username and login_throttled(username=username, address=address):
            minutes = max(1, round(settings.LOGIN_THROTTLE_SECONDS / 60))
            raise forms.ValidationError(
                f"Too many failed logins for this account or from this address. Try again in {minutes} "
                "minutes, or ask an administrator to set a new password for the account (which lifts the "
                "account's lock, not the address's).",
                code="login_throttled",
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                login_failure_record(username=username, address=address)
            raise
        login_failures_clear(username=username)
        return cleaned


class ThrottledAuthenticationForm(LoginThrottleMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(LoginThrottleMixin, AdminAuthenticationForm):
    pass
