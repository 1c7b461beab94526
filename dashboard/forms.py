"""The alert rule form, the same for the Alerts page's rule editor and the Django admin: a rule
saved past its checks (an unknown metric, a parameter "abc", a filter that is not a list) failed
every evaluation, told to nobody."""

from django import forms

from analytics.metrics import METRICS
from dashboard.alerts import alert_params_clean
from dashboard.models import AlertRule


class AlertRuleForm(forms.ModelForm):
    webhook_url = forms.URLField(required=False, assume_scheme="https")
    metric = forms.ChoiceField(choices=[(name, metric.label) for name, metric in METRICS.items()])
    group_by = forms.ChoiceField(
        required=False, choices=[("", "Whole scope"), ("branch", "Each branch"), ("product_line", "Each product line")]
    )

    class Meta:
        model = AlertRule
        fields = [
            "name",
            "datasource",
            "metric",
            "filters",
            "group_by",
            "kind",
            "params",
            "severity",
            "enabled",
            "notify_emails",
            "webhook_url",
        ]
        help_texts = {
            "filters": 'Scope, e.g. {"branch": ["A"]}. Empty: all data.',
            "params": "Condition parameters; empty uses the defaults listed below.",
            "notify_emails": 'e.g. ["manager@example.com"]',
        }

    def __init__(self, *args, allowed_branches: tuple[str, ...] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.allowed_branches = allowed_branches
        if allowed_branches:  # an unreadable scope allows no branch: () has none to show
            self.fields["filters"].help_text = (
                f'Scope, e.g. {{"branch": ["{allowed_branches[0]}"]}}. Empty: all your branches '
                f"({', '.join(allowed_branches)}); the rule never looks at other branches."
            )

    def clean_filters(self) -> dict:
        value = self.cleaned_data["filters"] or {}
        if not isinstance(value, dict) or not all(_strings_list(v) for v in value.values()):
            raise forms.ValidationError('Use {"dimension": ["value", …]}, each value in quotes.')
        if self.allowed_branches is not None:
            outside = sorted({str(branch) for branch in value.get("branch", [])} - set(self.allowed_branches))
            if outside:
                raise forms.ValidationError(
                    f"You may watch only your branches ({', '.join(self.allowed_branches)}); "
                    f"remove {', '.join(outside)} from the branch filter."
                )
        return value

    def clean_params(self) -> dict:
        value = self.cleaned_data["params"] or {}
        kind = self.cleaned_data.get("kind")
        if not kind:
            return value
        if not isinstance(value, dict):
            raise forms.ValidationError('Use {"parameter": value, …}.')
        try:
            return alert_params_clean(kind=kind, params=value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_notify_emails(self) -> list:
        value = self.cleaned_data["notify_emails"] or []
        if not _strings_list(value):
            # A bare "a@b.example" was checked character by character.
            raise forms.ValidationError('Use a list of addresses in quotes, e.g. ["manager@example.com"].')
        validator = forms.EmailField()
        return [validator.clean(address) for address in value]


def _strings_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
