"""Small Defender exports written by tests, so each rule is checked on rows we can explain."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

T0 = datetime(2026, 3, 9, 12, tzinfo=timezone.utc)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def event(device="ws01.corp.local", ip="10.0.0.5", port=445, minutes=0, action="ConnectionSuccess",
          process="powershell.exe", account="alice", device_id=None, time_column="Timestamp", **extra):
    row = {time_column: at(minutes), "DeviceId": device_id or f"id-{device}", "DeviceName": device,
           "ActionType": action, "RemoteIP": ip, "RemotePort": port, "RemoteUrl": "",
           "InitiatingProcessFileName": process, "InitiatingProcessAccountName": account,
           "InitiatingProcessAccountSid": "S-1-5-21-1-2-3-1001", "InitiatingProcessAccountUpn": f"{account}@corp.local"}
    row.update(extra)
    return row


def info(device, addresses, minutes=-60, as_string=True, time_column="Timestamp"):
    entries = [{"IPAddress": a, "SubnetPrefix": 24, "AddressType": "Private"} for a in addresses]
    return {time_column: at(minutes), "DeviceId": f"id-{device}", "DeviceName": device,
            "IPAddresses": json.dumps(entries) if as_string else entries}


# An export always holds some DeviceNetworkInfo (an empty table is refused as a partial
# export): tests that give no reports get one of a device no test connects to.
BYSTANDER = info("bystander", ["10.255.255.254"])


def write_folder(folder: Path, events=(), infos=()) -> Path:
    infos = infos or [BYSTANDER]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "DeviceNetworkEvents.jsonl").write_text("".join(json.dumps(r) + "\n" for r in events))
    (folder / "DeviceNetworkInfo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in infos))
    return folder


def incident(host: dict, first=0, last=60) -> dict:
    """A trigger body with one Host entity and activity times relative to T0."""
    return {
        "workspaceId": "0f8e2b6a-1c3d-4e5f-8a7b-9c0d1e2f3a4b",
        "object": {
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"
                  "/providers/Microsoft.SecurityInsights/Incidents/inc-1",
            "properties": {"title": "test", "incidentNumber": 1, "firstActivityTimeUtc": at(first),
                           "lastActivityTimeUtc": at(last), "relatedEntities": [{"kind": "Host", "properties": host}]},
        },
    }
