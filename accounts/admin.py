from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.forms import TokenRevokingAdminPasswordChangeForm
from accounts.models import APIToken, BranchScope, branch_names_problem, branch_names_tidy
from accounts.selectors import api_token_owners_allowed, api_tokens_manageable, user_allowed_branches
from accounts.services import api_token_create, api_token_revoke, user_api_tokens_revoke, user_password_set_by_admin
from analytics.catalogue import branches_published
from sales_analytics.plural import counted


class UnscopedStaffAdmin(admin.ModelAdmin):
    """The admin of a model whose rows span every branch (alert rules and events, saved column
    mappings): out of reach of branch-scoped staff, who would read or change other branches' data."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _unscoped(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _unscoped(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _unscoped(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return _unscoped(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return _unscoped(request) and super().has_delete_permission(request, obj)


def _unscoped(request: HttpRequest) -> bool:
    return user_allowed_branches(user=request.user) is None


class APITokenAddForm(forms.ModelForm):
    days = forms.IntegerField(
        min_value=0,
        required=False,
        label="Valid for (days)",
        help_text="0: the token never expires. Empty: API_TOKEN_DAYS.",
    )

    class Meta:
        model = APIToken
        fields = ("user", "name")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["days"].initial = settings.API_TOKEN_DAYS


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    list_display = ("key_prefix", "name", "user", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "user__username", "key_prefix")
    readonly_fields = ("key_prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    fields = ("user", "name", "key_prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    add_fields = ("user", "name", "days")
    actions = ["revoke_tokens"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[APIToken]:
        return api_tokens_manageable(user=request.user)

    def get_fields(self, request: HttpRequest, obj: APIToken | None = None) -> tuple[str, ...]:
        return self.fields if obj is not None else self.add_fields

    def get_form(self, request: HttpRequest, obj: APIToken | None = None, change: bool = False, **kwargs):
        if obj is None:
            kwargs["form"] = APITokenAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: APIToken | None = None) -> tuple[str, ...]:
        # A token stays with the user it was made for: moving it hands that user's access to another.
        return (*self.readonly_fields, "user") if obj is not None else self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = api_token_owners_allowed(user=request.user)
            kwargs.setdefault("initial", request.user.pk)
            if not request.user.is_superuser:
                kwargs["help_text"] = "You can make tokens for yourself only; ask a superuser for another user's."
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: APIToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw_token = api_token_create(user=obj.user, name=obj.name, days=form.cleaned_data["days"])
        obj.pk = token.pk
        obj.key_prefix = token.key_prefix
        obj.expires_at = token.expires_at
        # Shown once: only the hash is stored.
        messages.warning(request, f"Copy the new token now, it will not be shown again: {raw_token}")

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[APIToken]) -> None:
        active = list(queryset.filter(revoked_at__isnull=True))
        for token in active:
            api_token_revoke(token=token)
        already = queryset.count() - len(active)
        earlier = f" ({counted(already, 'token was', 'tokens were')} revoked already)" if already else ""
        self.message_user(request, f"Revoked {counted(len(active), 'token')}{earlier}.", messages.SUCCESS)


class BranchScopeForm(forms.ModelForm):
    class Meta:
        model = BranchScope
        fields = ("branches",)

    def clean_branches(self) -> list[str]:
        value = self.cleaned_data["branches"]
        if value is None:
            return []
        if problem := branch_names_problem(value):
            raise forms.ValidationError(problem)
        return branch_names_tidy(value)


class BranchScopeInline(admin.StackedInline):
    model = BranchScope
    form = BranchScopeForm
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name_plural = "Branch scope (leave empty for all branches)"


User = get_user_model()
admin.site.unregister(User)


class LockLiftingPasswordChangeForm(TokenRevokingAdminPasswordChangeForm):
    """A password an administrator sets revokes the user's API tokens and lifts the username's login lock."""

    def save(self, commit: bool = True):
        user = super().save(commit=commit)
        if commit:
            user_password_set_by_admin(user=user)
        return user


@admin.register(User)
class ScopedUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, BranchScopeInline]
    change_password_form = LockLiftingPasswordChangeForm

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not obj.is_active and user_api_tokens_revoke(user=obj):
            messages.info(request, f"The API tokens of {obj} were revoked: the account is inactive.")

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        scope = BranchScope.objects.filter(user=form.instance).first()
        if scope is not None and (warning := _branches_unpublished_warning(scope.branches)):
            messages.warning(request, warning)


def _branches_unpublished_warning(branches: list[str]) -> str:
    """A warning naming the scope's branches that no published data has (a user scoped to "a"
    sees nothing of branch "A"), or "" when all are known or the published branches are not."""
    published = branches_published()
    if published is None:
        return ""
    unknown = [name for name in branches if name not in published]
    if not unknown:
        return ""
    by_casefold = {name.casefold(): name for name in published}
    described = ", ".join(
        f"'{name}' (did you mean '{by_casefold[name.casefold()]}'?)" if name.casefold() in by_casefold else f"'{name}'"
        for name in unknown
    )
    return (
        f"No published data has branch {described}: until some does, this user sees nothing of it. "
        f"Published branches: {', '.join(sorted(published)) or 'none yet'}."
    )
