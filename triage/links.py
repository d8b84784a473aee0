"""Links from the comment: the exact query in Log Analytics and in Defender advanced
hunting, and a remote device's Defender page. Both portals take the query gzip-compressed
and base64-encoded, as their own "share link" buttons make it."""

from __future__ import annotations

import base64
import gzip
import re
from urllib.parse import quote

from .incident import INCIDENT_ID
from .window import Window, iso

AZURE_PORTAL = "https://portal.azure.com"
DEFENDER_PORTAL = "https://security.microsoft.com"


_TIME_GENERATED = re.compile(r"\bTimeGenerated\b")


def _packed(kql: str) -> str:
    # Whole-line comments go: links are long, and the portals show the query as it runs.
    text = "\n".join(line for line in kql.splitlines() if not line.lstrip().startswith("//"))
    return quote(base64.b64encode(gzip.compress(text.encode("utf-8"), mtime=0)).decode("ascii"), safe="")


def log_analytics(kql: str, incident_arm_id: str | None, window: Window) -> str | None:
    """The query in the incident's workspace, over the window; None without a workspace."""
    match = INCIDENT_ID.match(incident_arm_id or "")
    if match is None:
        return None
    timespan = quote(f"{iso(window.start)}/{iso(window.end)}", safe="")
    return (f"{AZURE_PORTAL}/#blade/Microsoft_Azure_Monitoring_Logs/LogsBlade/resourceId/{quote(match['workspace'], safe='')}"
            f"/source/LogsBlade.AnalyticsShareLinkToQuery/q/{_packed(kql)}/timespan/{timespan}")


def advanced_hunting(kql: str) -> str:
    """Defender advanced hunting names the time column Timestamp, not TimeGenerated."""
    defender_kql = _TIME_GENERATED.sub("Timestamp", kql)
    return f"{DEFENDER_PORTAL}/v2/advanced-hunting?query={_packed(defender_kql)}&timeRangeId=month"


def device_page(device_id: str) -> str:
    return f"{DEFENDER_PORTAL}/machines/v2/{quote(device_id, safe='')}/overview"
