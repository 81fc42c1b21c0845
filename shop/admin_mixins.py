class ReadOnlyAdminMixin:
    """Staff may look, never add, edit or delete: the rows are written by services only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
