"""Deterministic, realistic Defender exports at scale, for the benchmarks and their test.

`python -m benchmarks.generate OUT --devices N --days D --events E` writes, under OUT:

- `parquet/DeviceNetworkEvents-<day>.parquet`, `parquet/DeviceNetworkInfo.parquet`: flat rows
  as an advanced-hunting export (`Timestamp`), one file per day, time-ordered;
- `jsonl/<day>.json.gz`: Defender streaming-API envelopes, both tables mixed in each file;
- `incident.json`: a Sentinel incident trigger body naming the first compromised host.

The same parameters always give the same bytes of data (the randomness is DuckDB's
`hash` of the row number, no clock, no RNG state). What makes it realistic for this
query: workstations get a new DHCP address every day from a pool shared with the other
workstations (so an address has several holders over the window), one device in ten
reports several adapters (a second private network, link-local and IPv6 addresses),
most traffic is public or to servers, and a few compromised hosts connect laterally to
other workstations' current addresses on their last day. Every row carries the full
set of Defender columns, because the width of a row is what reading JSON costs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

START = datetime(2026, 3, 1, tzinfo=timezone.utc)
DOMAIN = "corp.contoso.com"
SERVERS = 40  # static addresses 10.0.0.1 .. 10.0.0.40


@dataclass(frozen=True)
class Size:
    devices: int
    days: int
    events_per_device_day: int

    @property
    def rows(self) -> int:
        return self.devices * self.days * self.events_per_device_day


@dataclass(frozen=True)
class Generated:
    parquet: Path
    jsonl: Path
    incident: Path
    compromised: tuple[str, ...]  # short host names


def compromised_devices(size: Size) -> tuple[int, ...]:
    """Device numbers of the compromised workstations (never a server)."""
    return tuple(sorted({max(SERVERS, size.devices * k // 7) for k in (3, 4, 5)}))


def host_name(device: int) -> str:
    return f"srv-{device:05d}" if device < SERVERS else f"ws-{device:05d}"


def _macros(con: duckdb.DuckDBPyConnection, size: Size) -> None:
    pool = size.devices + size.devices // 8 + 11  # DHCP pool, larger than the fleet
    con.execute(f"""
        CREATE OR REPLACE MACRO rnd(i, k) AS hash(i, k);
        CREATE OR REPLACE MACRO pick(i, k, n) AS CAST(hash(i, k) % n AS INTEGER);
        CREATE OR REPLACE MACRO host(dev) AS
            CASE WHEN dev < {SERVERS} THEN 'srv-' ELSE 'ws-' END || lpad(CAST(dev AS VARCHAR), 5, '0');
        CREATE OR REPLACE MACRO device_name(dev) AS host(dev) || '.{DOMAIN}';
        CREATE OR REPLACE MACRO device_id(dev) AS sha256('device' || CAST(dev AS VARCHAR))[1:40];
        CREATE OR REPLACE MACRO pool_ip(slot) AS
            '10.' || CAST(1 + slot // 65536 AS VARCHAR) || '.' || CAST(slot // 256 % 256 AS VARCHAR) || '.' || CAST(slot % 256 AS VARCHAR);
        -- 7919 is prime and never divides the pool: each day is a permutation of the pool.
        CREATE OR REPLACE MACRO slot_of(dev, day) AS CAST((dev * 7919 + day * 104729) % {pool} AS INTEGER);
        CREATE OR REPLACE MACRO address(dev, day) AS
            CASE WHEN dev < {SERVERS} THEN '10.0.0.' || CAST(dev + 1 AS VARCHAR) ELSE pool_ip(slot_of(dev, day)) END;
        CREATE OR REPLACE MACRO any_address(i, k, day) AS pool_ip(CAST((hash(i, k) % {pool}) AS INTEGER));
    """)


def _events_sql(size: Size, day: int) -> str:
    """One day of DeviceNetworkEvents, every Defender column, in time order."""
    per_day = size.devices * size.events_per_device_day
    day_start = (START + timedelta(days=day)).strftime("%Y-%m-%d %H:%M:%S")
    compromised = ", ".join(str(d) for d in compromised_devices(size))
    lateral_day = size.days - 1
    return f"""
    WITH base AS (
        SELECT i, CAST(i % {size.devices} AS INTEGER) AS dev, pick(i, 1, 100) AS kind,
               TIMESTAMPTZ '{day_start}+00' + to_milliseconds(CAST(rnd(i, 2) % 86400000 AS BIGINT)) AS ts
        FROM range({day * per_day}, {(day + 1) * per_day}) t(i)
    ), shaped AS (
        SELECT *, CASE
            WHEN dev IN ({compromised}) AND {day} = {lateral_day} AND kind < 30 THEN 'lateral'
            WHEN kind < 45 THEN 'public' WHEN kind < 60 THEN 'server' WHEN kind < 64 THEN 'mapped'
            WHEN kind < 68 THEN 'localservice' WHEN kind < 72 THEN 'sensor' WHEN kind < 78 THEN 'peer'
            WHEN kind < 88 THEN 'failed' WHEN kind < 95 THEN 'inbound' ELSE 'listening' END AS traffic
        FROM base
    ), rows AS (
        SELECT *,
            CASE traffic
                WHEN 'public' THEN ['20.', '52.', '13.', '40.', '104.'][pick(i, 3, 5) + 1] || CAST(pick(i, 4, 256) AS VARCHAR)
                                   || '.' || CAST(pick(i, 5, 256) AS VARCHAR) || '.' || CAST(pick(i, 6, 254) + 1 AS VARCHAR)
                WHEN 'server' THEN '10.0.0.' || CAST(pick(i, 3, {SERVERS}) + 1 AS VARCHAR)
                WHEN 'mapped' THEN ['::ffff:', '::FFFF:'][pick(i, 4, 2) + 1] || '10.0.0.' || CAST(pick(i, 3, {SERVERS}) + 1 AS VARCHAR)
                WHEN 'localservice' THEN '10.0.0.' || CAST(pick(i, 3, {SERVERS}) + 1 AS VARCHAR)
                WHEN 'sensor' THEN '10.0.0.' || CAST(pick(i, 3, {SERVERS}) + 1 AS VARCHAR)
                WHEN 'peer' THEN any_address(i, 3, {day})
                WHEN 'lateral' THEN address({SERVERS} + pick(i, 3, {size.devices - SERVERS}), {day})
                WHEN 'failed' THEN any_address(i, 3, {day})
                WHEN 'inbound' THEN any_address(i, 3, {day})
                ELSE ['0.0.0.0', '127.0.0.1', '::'][pick(i, 3, 3) + 1] END AS remote_ip,
            CASE traffic
                WHEN 'public' THEN [443, 443, 443, 80][pick(i, 7, 4) + 1]
                WHEN 'server' THEN [445, 88, 389, 135, 53, 443][pick(i, 7, 6) + 1]
                WHEN 'mapped' THEN [445, 389][pick(i, 7, 2) + 1]
                WHEN 'lateral' THEN [445, 135, 5985, 3389][pick(i, 7, 4) + 1]
                WHEN 'peer' THEN [445, 3389, 5985, 139][pick(i, 7, 4) + 1]
                WHEN 'inbound' THEN 49152 + pick(i, 7, 16000)
                ELSE [443, 445, 53, 135][pick(i, 7, 4) + 1] END AS remote_port,
            CASE traffic
                WHEN 'public' THEN ['chrome.exe', 'msedge.exe', 'svchost.exe', 'Teams.exe', 'OneDrive.exe'][pick(i, 8, 5) + 1]
                WHEN 'server' THEN ['svchost.exe', 'lsass.exe', 'System', 'explorer.exe'][pick(i, 8, 4) + 1]
                WHEN 'sensor' THEN ['SenseNdr.exe', 'sensendr.exe', 'SENSENDR.EXE'][pick(i, 8, 3) + 1]
                WHEN 'lateral' THEN ['PsExec.exe', 'powershell.exe', 'wmic.exe', 'mstsc.exe'][pick(i, 8, 4) + 1]
                ELSE ['svchost.exe', 'powershell.exe', 'explorer.exe', 'mmc.exe'][pick(i, 8, 4) + 1] END AS process,
            CASE
                WHEN traffic = 'localservice' THEN ['local service', 'LOCAL SERVICE'][pick(i, 9, 2) + 1]
                WHEN traffic IN ('public', 'peer', 'lateral') AND pick(i, 9, 3) > 0 THEN 'user' || CAST(dev AS VARCHAR)
                ELSE ['system', 'network service'][pick(i, 9, 2) + 1] END AS account
        FROM shaped
    )
    SELECT
        ts AS Timestamp,
        device_id(dev) AS DeviceId,
        device_name(dev) AS DeviceName,
        CASE traffic WHEN 'failed' THEN ['ConnectionFailed', 'ConnectionAttempt'][pick(i, 10, 2) + 1]
                     WHEN 'inbound' THEN 'InboundConnectionAccepted' WHEN 'listening' THEN 'ListeningConnectionCreated'
                     ELSE 'ConnectionSuccess' END AS ActionType,
        remote_ip AS RemoteIP,
        remote_port AS RemotePort,
        CASE traffic WHEN 'public' THEN ['login.microsoftonline.com', 'www.bing.com', 'teams.microsoft.com',
                                         'contoso.sharepoint.com', ''][pick(i, 11, 5) + 1] ELSE '' END AS RemoteUrl,
        address(dev, {day}) AS LocalIP,
        CASE WHEN traffic = 'inbound' THEN [445, 135, 3389][pick(i, 12, 3) + 1] ELSE 49152 + pick(i, 12, 16000) END AS LocalPort,
        CASE WHEN pick(i, 13, 10) = 0 THEN 'Udp' ELSE 'Tcp' END AS Protocol,
        'Private' AS LocalIPType,
        CASE WHEN traffic = 'public' THEN 'Public' WHEN traffic = 'listening' THEN 'Loopback' ELSE 'Private' END AS RemoteIPType,
        sha256(process)[1:40] AS InitiatingProcessSHA1,
        sha256(process) AS InitiatingProcessSHA256,
        md5(process) AS InitiatingProcessMD5,
        process AS InitiatingProcessFileName,
        1000000 + pick(i, 14, 4000000) AS InitiatingProcessFileSize,
        'Microsoft Corporation' AS InitiatingProcessVersionInfoCompanyName,
        'Microsoft Windows' AS InitiatingProcessVersionInfoProductName,
        '10.0.19041.1' AS InitiatingProcessVersionInfoProductVersion,
        process AS InitiatingProcessVersionInfoOriginalFileName,
        pick(i, 15, 60000) + 4 AS InitiatingProcessId,
        process || ' -k netsvcs -p' AS InitiatingProcessCommandLine,
        ts - INTERVAL 3 HOUR AS InitiatingProcessCreationTime,
        'c:\\windows\\system32\\' || lower(process) AS InitiatingProcessFolderPath,
        'services.exe' AS InitiatingProcessParentFileName,
        pick(i, 16, 2000) + 400 AS InitiatingProcessParentId,
        ts - INTERVAL 5 HOUR AS InitiatingProcessParentCreationTime,
        CASE WHEN account LIKE 'user%' THEN 'CONTOSO' ELSE 'NT AUTHORITY' END AS InitiatingProcessAccountDomain,
        account AS InitiatingProcessAccountName,
        CASE WHEN account LIKE 'user%' THEN 'S-1-5-21-1004336348-1177238915-682003330-' || CAST(1000 + dev AS VARCHAR)
             WHEN lower(account) = 'local service' THEN 'S-1-5-19' WHEN account = 'network service' THEN 'S-1-5-20'
             ELSE 'S-1-5-18' END AS InitiatingProcessAccountSid,
        CASE WHEN account LIKE 'user%' THEN account || '@{DOMAIN}' END AS InitiatingProcessAccountUpn,
        CASE WHEN account LIKE 'user%' THEN CAST(md5_number(account) AS UUID) END AS InitiatingProcessAccountObjectId,
        CASE WHEN account LIKE 'user%' THEN 'Medium' ELSE 'System' END AS InitiatingProcessIntegrityLevel,
        'Default' AS InitiatingProcessTokenElevation,
        CAST(i AS BIGINT) AS ReportId,
        '' AS AppGuardContainerId,
        '{{}}' AS AdditionalFields
    FROM rows
    ORDER BY Timestamp, ReportId
    """


def _info_sql(size: Size) -> str:
    """DeviceNetworkInfo: every device reports its adapters four times a day."""
    reports = size.devices * size.days * 4
    return f"""
    WITH base AS (
        SELECT i, CAST(i % {size.devices} AS INTEGER) AS dev, CAST(i // ({size.devices} * 4) AS INTEGER) AS day,
               CAST(i // {size.devices} % 4 AS INTEGER) AS quarter
        FROM range({reports}) t(i)
    )
    SELECT
        TIMESTAMPTZ '{START.strftime("%Y-%m-%d %H:%M:%S")}+00' + to_hours(day * 24 + quarter * 6)
            + to_seconds(CAST(rnd(i, 20) % 3600 AS BIGINT)) AS Timestamp,
        device_id(dev) AS DeviceId,
        device_name(dev) AS DeviceName,
        'Ethernet' AS NetworkAdapterName,
        upper(md5('mac' || CAST(dev AS VARCHAR))[1:12]) AS MacAddress,
        'Ethernet' AS NetworkAdapterType,
        'Up' AS NetworkAdapterStatus,
        'None' AS TunnelType,
        '[{{"Name":"{DOMAIN}","Category":"Domain","IsConnectedToInternet":true}}]' AS ConnectedNetworks,
        '["10.0.0.1","10.0.0.2"]' AS DnsAddresses,
        '[]' AS IPv4Dhcp,
        '[]' AS IPv6Dhcp,
        '["10.0.0.254"]' AS DefaultGateways,
        '[{{"IPAddress":"' || address(dev, day) || '","SubnetPrefix":16,"AddressType":"Private"}}'
            || CASE WHEN dev % 10 = 3 THEN
                ',{{"IPAddress":"192.168.' || CAST(dev % 256 AS VARCHAR) || '.' || CAST(day + 2 AS VARCHAR)
                || '","SubnetPrefix":24,"AddressType":"Private"}},{{"IPAddress":"169.254.' || CAST(dev % 256 AS VARCHAR)
                || '.7","SubnetPrefix":16,"AddressType":"Private"}},{{"IPAddress":"fe80::' || CAST(dev AS VARCHAR)
                || ':1","SubnetPrefix":64,"AddressType":"LinkLocal"}}'
               ELSE '' END || ']' AS IPAddresses,
        CAST(i AS BIGINT) AS ReportId
    FROM base
    ORDER BY Timestamp, ReportId
    """


def _incident(size: Size, device: int) -> dict:
    last_day = START + timedelta(days=size.days - 1)
    first = last_day + timedelta(hours=9)
    return {
        "workspaceId": "22222222-3333-4444-8555-666666666666",
        "object": {
            "id": "/subscriptions/11111111-2222-4333-8444-555555555555/resourceGroups/rg-sec/providers/"
                  "Microsoft.OperationalInsights/workspaces/sentinel-prod/providers/Microsoft.SecurityInsights/"
                  "Incidents/00000000-0000-4000-8000-000000000001",
            "properties": {
                "title": "Benchmark: suspicious remote execution", "incidentNumber": 1, "severity": "High",
                "firstActivityTimeUtc": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "lastActivityTimeUtc": (first + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "relatedEntities": [{"kind": "Host", "properties": {"hostName": host_name(device)}}],
            },
        },
    }


def generate(out: Path, size: Size, formats: tuple[str, ...] = ("parquet", "jsonl")) -> Generated:
    """Write the export under `out` (idempotent: files already there are kept)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    _macros(con, size)
    parquet, jsonl = out / "parquet", out / "jsonl"
    for folder in (parquet, jsonl):
        folder.mkdir(parents=True, exist_ok=True)
    info = parquet / "DeviceNetworkInfo.parquet"
    if "parquet" in formats and not info.exists():
        con.execute(f"COPY ({_info_sql(size)}) TO '{info}' (FORMAT parquet)")
    for day in range(size.days):
        stamp = (START + timedelta(days=day)).strftime("%Y-%m-%d")
        events = _events_sql(size, day)
        target = parquet / f"DeviceNetworkEvents-{stamp}.parquet"
        if "parquet" in formats and not target.exists():
            con.execute(f"COPY ({events}) TO '{target}' (FORMAT parquet, ROW_GROUP_SIZE 122880)")
        target = jsonl / f"{stamp}.json.gz"
        if "jsonl" in formats and not target.exists():
            # The streaming API's envelope: properties hold the row, times as ISO text with 7 decimals.
            envelope = """SELECT p.Timestamp AS time,
                              '5f1c3a2e-0b7d-4c1e-9a52-3c8e2d7f6a11' AS tenantId, 'Publish' AS operationName,
                              'AdvancedHunting-{table}' AS category, to_json(p) AS properties
                           FROM (SELECT strftime(Timestamp, '%Y-%m-%dT%H:%M:%S.%f') || '0Z' AS Timestamp,
                                        * EXCLUDE (Timestamp) FROM ({rows})) p"""
            day_info = (f"SELECT * FROM ({_info_sql(size)}) "
                        f"WHERE Timestamp >= TIMESTAMPTZ '{stamp} 00:00:00+00' AND Timestamp < TIMESTAMPTZ '{stamp} 00:00:00+00' + INTERVAL 1 DAY")
            con.execute(f"COPY ({envelope.format(table='DeviceNetworkInfo', rows=day_info)} UNION ALL "
                        f"{envelope.format(table='DeviceNetworkEvents', rows=events)}) "
                        f"TO '{target}' (FORMAT json, COMPRESSION gzip)")
    incident = out / "incident.json"
    compromised = compromised_devices(size)
    incident.write_text(json.dumps(_incident(size, compromised[0]), indent=1), encoding="utf-8")
    return Generated(parquet, jsonl, incident, tuple(host_name(d) for d in compromised))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--devices", type=int, default=2000)
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--events", type=int, default=100, help="events per device per day")
    p.add_argument("--formats", default="parquet,jsonl")
    args = p.parse_args(argv)
    size = Size(args.devices, args.days, args.events)
    generated = generate(args.out, size, tuple(args.formats.split(",")))
    print(f"{size.rows:,} DeviceNetworkEvents rows under {args.out}; compromised: {', '.join(generated.compromised)}")


if __name__ == "__main__":
    main()
