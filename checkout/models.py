from django.db import models
from django.utils.translation import gettext_lazy as _


class StockAudit(models.Model):
    """One run of the stock and order audit (``audit_stock``, hourly in beat): what it found."""

    ran_at = models.DateTimeField(_("ran at"), auto_now_add=True, db_index=True)
    drift_count = models.PositiveIntegerField(_("drifts found"))
    # [{"code", "message", "ids"}], one per kind of drift; empty when every invariant holds.
    drifts = models.JSONField(_("drifts"), default=list, blank=True)

    class Meta:
        ordering = ["-ran_at", "-id"]
        verbose_name = _("stock audit")
        verbose_name_plural = _("stock audits")

    def __str__(self):
        return f"audit {self.ran_at:%Y-%m-%d %H:%M}: {self.drift_count} drifts"

    @property
    def ok(self):
        return self.drift_count == 0
