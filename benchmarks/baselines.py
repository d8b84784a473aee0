"""The two implementations the embedded engine is measured against, both SPEC.md section 4.

- `handwritten_sql`: the same answer written directly in DuckDB SQL over the same
  tables (the practical lower bound: no KQL, no translation, one statement);
- `with_pandas`: what a user would otherwise write: read the export with pandas, filter,
  group, join.

Both return `Incident`: the devices the selector matched and the section 4 rows, as
plain Python values, so that they compare equal to the embedded engine's answer.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from triage.query import Parameters
from triage.result import Connection



@dataclass(frozen=True)
class Incident:
    devices: tuple[str, ...]
    rows: tuple[Connection, ...]


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


# --- hand-written DuckDB SQL -------------------------------------------------------------

_SELECTOR = """CASE $kind WHEN 'deviceId' THEN lower(DeviceId) = lower($value)
                      WHEN 'fqdn' THEN lower(DeviceName) = lower($value)
                      ELSE lower(DeviceName) = lower($value) OR starts_with(lower(DeviceName), lower($value) || '.') END"""
_NORMALISE = "CASE WHEN lower({0}) LIKE '::ffff:%' THEN {0}[8:] ELSE {0} END"

_MATCHED_SQL = f"""
SELECT DISTINCT DeviceName FROM (
    SELECT DeviceName, DeviceId, TimeGenerated FROM DeviceNetworkEvents
    UNION ALL SELECT DeviceName, DeviceId, TimeGenerated FROM DeviceNetworkInfo)
WHERE TimeGenerated BETWEEN $start AND $end AND ({_SELECTOR})
ORDER BY DeviceName
"""

_ROWS_SQL = f"""
WITH events AS (
    SELECT DeviceName, TimeGenerated, RemotePort, RemoteUrl, InitiatingProcessFileName,
           InitiatingProcessAccountSid, InitiatingProcessAccountUpn, {_NORMALISE.format("RemoteIP")} AS ip
    FROM DeviceNetworkEvents
    WHERE TimeGenerated BETWEEN $start AND $end AND ({_SELECTOR})
      AND ActionType = 'ConnectionSuccess'
      AND NOT list_contains($processes, coalesce(lower(InitiatingProcessFileName), ''))
      AND NOT list_contains($accounts, coalesce(lower(InitiatingProcessAccountName), ''))
), private AS (
    SELECT *, regexp_extract(ip, '^(\\d{{1,3}})\\.(\\d{{1,3}})\\.(\\d{{1,3}})\\.(\\d{{1,3}})$', ['a', 'b', 'c', 'd']) AS o
    FROM events
), connections AS (
    SELECT DeviceName AS CompromisedDevice, ip AS RemoteIP,
           list_sort(list_distinct(list(CAST(RemotePort AS INTEGER)))) AS ConnectedPorts, count(*) AS ConnectionCount,
           min(TimeGenerated) AS FirstSeen, max(TimeGenerated) AS LastSeen,
           -- One struct, so that every field comes from the same (latest) row, nulls included.
           arg_max({{'RemoteUrl': RemoteUrl, 'InitiatingProcessFileName': InitiatingProcessFileName,
                           'InitiatingProcessAccountSid': InitiatingProcessAccountSid,
                           'InitiatingProcessAccountUpn': InitiatingProcessAccountUpn}}, TimeGenerated) AS latest
    FROM private
    WHERE o.a <> '' AND TRY_CAST(o.b AS INTEGER) <= 255 AND TRY_CAST(o.c AS INTEGER) <= 255 AND TRY_CAST(o.d AS INTEGER) <= 255
      AND (o.a = '10' OR (o.a = '172' AND TRY_CAST(o.b AS INTEGER) BETWEEN 16 AND 31) OR (o.a = '192' AND o.b = '168'))
    GROUP BY DeviceName, ip
), reports AS (
    SELECT TimeGenerated AS t, DeviceName AS holder, {_NORMALISE.format("(a ->> 'IPAddress')")} AS RemoteIP
    FROM (SELECT TimeGenerated, DeviceName, unnest(CAST(IPAddresses AS JSON[])) AS a
          FROM DeviceNetworkInfo WHERE TimeGenerated BETWEEN $start AND $end)
    WHERE {_NORMALISE.format("(a ->> 'IPAddress')")} IN (SELECT RemoteIP FROM connections)
      AND NOT starts_with({_NORMALISE.format("(a ->> 'IPAddress')")}, '169.254.')
), pairs AS (
    SELECT c.CompromisedDevice, c.RemoteIP, c.LastSeen, r.t, r.holder
    FROM connections c JOIN reports r USING (RemoteIP)
), held AS (
    SELECT CompromisedDevice, RemoteIP, coalesce(max(t) FILTER (WHERE t <= LastSeen), min(t) FILTER (WHERE t > LastSeen)) AS at,
           list_sort(list_distinct(list(holder))) AS candidates
    FROM pairs GROUP BY ALL
), holders AS (
    SELECT h.CompromisedDevice, h.RemoteIP, min(p.holder) AS name, any_value(h.candidates) AS candidates
    FROM held h JOIN pairs p ON p.CompromisedDevice = h.CompromisedDevice AND p.RemoteIP = h.RemoteIP AND p.t = h.at
    GROUP BY ALL
)
SELECT c.RemoteIP, h.name AS RemoteDeviceName, h.candidates AS RemoteDeviceCandidates, c.ConnectedPorts,
       c.ConnectionCount, c.FirstSeen, c.LastSeen, (c.latest).RemoteUrl AS RemoteUrl,
       (c.latest).InitiatingProcessFileName AS InitiatingProcessFileName,
       (c.latest).InitiatingProcessAccountSid AS InitiatingProcessAccountSid,
       (c.latest).InitiatingProcessAccountUpn AS InitiatingProcessAccountUpn, c.CompromisedDevice
FROM connections c LEFT JOIN holders h USING (CompromisedDevice, RemoteIP)
WHERE h.name IS NULL OR lower(h.name) <> lower(c.CompromisedDevice)
ORDER BY c.LastSeen DESC, c.RemoteIP
"""


def handwritten_sql(con: Any, p: Parameters) -> Incident:
    """Over a DuckDB connection holding the tables as `triage.exports` builds them."""
    where = {"start": _naive(p.window.start), "end": _naive(p.window.end), "kind": p.selector.kind, "value": p.selector.value}
    devices = tuple(r[0] for r in con.execute(_MATCHED_SQL, where).fetchall())
    cursor = con.execute(_ROWS_SQL, where | {
        "processes": [v.lower() for v in p.excluded_processes], "accounts": [v.lower() for v in p.excluded_accounts]})
    columns = [d[0] for d in cursor.description]
    return Incident(devices, tuple(Connection.from_row(dict(zip(columns, values))) for values in cursor.fetchall()))


# --- pandas ------------------------------------------------------------------------------

_EVENT_COLUMNS = ["Timestamp", "DeviceId", "DeviceName", "ActionType", "RemoteIP", "RemotePort", "RemoteUrl",
                  "InitiatingProcessFileName", "InitiatingProcessAccountName", "InitiatingProcessAccountSid",
                  "InitiatingProcessAccountUpn"]
_INFO_COLUMNS = ["Timestamp", "DeviceId", "DeviceName", "IPAddresses"]


def read_with_pandas(folder: Path) -> tuple[Any, Any]:
    """(events, info) DataFrames from a folder of Parquet files or of gzip JSONL envelopes."""
    import pandas as pd

    parquet = sorted(folder.glob("*.parquet"))
    if parquet:
        events = pd.concat([pd.read_parquet(f, columns=_EVENT_COLUMNS) for f in parquet if "Events" in f.name])
        info = pd.concat([pd.read_parquet(f, columns=_INFO_COLUMNS) for f in parquet if "Info" in f.name])
    else:
        tables: dict[str, list[dict[str, Any]]] = {"AdvancedHunting-DeviceNetworkEvents": [], "AdvancedHunting-DeviceNetworkInfo": []}
        for path in sorted(folder.glob("*.json.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as lines:
                for line in lines:
                    envelope = json.loads(line)
                    if envelope["category"] in tables:
                        tables[envelope["category"]].append(envelope["properties"])
        events = pd.DataFrame(tables["AdvancedHunting-DeviceNetworkEvents"], columns=_EVENT_COLUMNS)
        info = pd.DataFrame(tables["AdvancedHunting-DeviceNetworkInfo"], columns=_INFO_COLUMNS)
    for frame in (events, info):
        frame["Timestamp"] = pd.to_datetime(frame["Timestamp"], utc=True).dt.tz_localize(None)
    return events, info


def _selected(frame: Any, p: Parameters) -> Any:
    value = p.selector.value.lower()
    if p.selector.kind == "deviceId":
        return frame["DeviceId"].str.lower() == value
    names = frame["DeviceName"].str.lower()
    if p.selector.kind == "fqdn":
        return names == value
    return (names == value) | names.str.startswith(value + ".")


def _normalised(ips: Any) -> Any:
    mapped = ips.str.lower().str.startswith("::ffff:")
    return ips.where(~mapped, ips.str[7:])


def _is_rfc1918(ips: Any) -> Any:
    octets = ips.str.extract(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$").astype(float)
    valid = octets.notna().all(axis=1) & (octets <= 255).all(axis=1)
    a, b = octets[0], octets[1]
    return valid & ((a == 10) | ((a == 172) & b.between(16, 31)) | ((a == 192) & (b == 168)))


def with_pandas(events: Any, info: Any, p: Parameters) -> Incident:
    import pandas as pd

    start, end = _naive(p.window.start), _naive(p.window.end)
    in_window = events[events["Timestamp"].between(start, end) & _selected(events, p)]
    info_window = info[info["Timestamp"].between(start, end)]
    devices = sorted(set(in_window["DeviceName"]) | set(info_window.loc[_selected(info_window, p), "DeviceName"]))

    e = in_window[in_window["ActionType"] == "ConnectionSuccess"]
    e = e[~e["InitiatingProcessFileName"].fillna("").str.lower().isin([v.lower() for v in p.excluded_processes])]
    e = e[~e["InitiatingProcessAccountName"].fillna("").str.lower().isin([v.lower() for v in p.excluded_accounts])]
    e = e.assign(RemoteIP=_normalised(e["RemoteIP"]))
    e = e[_is_rfc1918(e["RemoteIP"])].sort_values("Timestamp", kind="stable")
    keys = ["DeviceName", "RemoteIP"]
    grouped = e.groupby(keys, sort=False)
    connections = grouped.tail(1).set_index(keys)[["Timestamp", "RemoteUrl", "InitiatingProcessFileName",
                                                    "InitiatingProcessAccountSid", "InitiatingProcessAccountUpn"]]
    connections = connections.rename(columns={"Timestamp": "LastSeen"}).join(grouped.agg(
        FirstSeen=("Timestamp", "min"), ConnectionCount=("Timestamp", "size"),
        ConnectedPorts=("RemotePort", lambda ports: sorted({int(v) for v in ports})))).reset_index()

    reports = info_window[["Timestamp", "DeviceName", "IPAddresses"]].assign(
        Address=info_window["IPAddresses"].map(lambda text: [a.get("IPAddress") for a in json.loads(text)]))
    reports = reports.explode("Address").dropna(subset=["Address"])
    reports = reports.assign(RemoteIP=_normalised(reports["Address"].astype(str)))
    reports = reports[reports["RemoteIP"].isin(set(connections["RemoteIP"])) & ~reports["RemoteIP"].str.startswith("169.254.")]
    pairs = connections[keys + ["LastSeen"]].merge(
        reports.rename(columns={"DeviceName": "Holder"})[["RemoteIP", "Timestamp", "Holder"]], on="RemoteIP")
    holders = {}
    for (device, ip), group in pairs.groupby(keys):
        before = group[group["Timestamp"] <= group["LastSeen"]]
        at = before["Timestamp"].max() if len(before) else group["Timestamp"].min()
        holders[(device, ip)] = (group.loc[group["Timestamp"] == at, "Holder"].min(), tuple(sorted(set(group["Holder"]))))

    def value(v: Any) -> Any:
        return None if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else v

    out = []
    for c in connections.itertuples(index=False):
        name, candidates = holders.get((c.DeviceName, c.RemoteIP), (None, None))
        if name is not None and name.lower() == c.DeviceName.lower():
            continue
        out.append({
            "RemoteIP": c.RemoteIP, "RemoteDeviceName": name, "RemoteDeviceCandidates": candidates,
            "ConnectedPorts": c.ConnectedPorts, "ConnectionCount": c.ConnectionCount,
            "FirstSeen": pd.Timestamp(c.FirstSeen).to_pydatetime(), "LastSeen": pd.Timestamp(c.LastSeen).to_pydatetime(),
            "RemoteUrl": value(c.RemoteUrl), "InitiatingProcessFileName": value(c.InitiatingProcessFileName),
            "InitiatingProcessAccountSid": value(c.InitiatingProcessAccountSid),
            "InitiatingProcessAccountUpn": value(c.InitiatingProcessAccountUpn), "CompromisedDevice": c.DeviceName,
        })
    rows = sorted((Connection.from_row(r) for r in out), key=lambda r: r.RemoteIP)
    return Incident(tuple(devices), tuple(sorted(rows, key=lambda r: r.LastSeen, reverse=True)))
