"""`python tests/cluster/node_table.py ADDRESS`: every node the cluster's GCS has known, alive or dead, as JSON
lines (id, alive, head, resources, start and end in unix ms, why it died). Run in a subprocess with the
cluster's token in its environment: the GCS refuses a client without it."""

import json
import sys

from google.protobuf.json_format import MessageToDict
from ray._raylet import GcsClient


def node_table(address: str) -> list[dict]:
    rows = []
    for info in GcsClient(address=address).get_all_node_info().values():
        death = MessageToDict(info.death_info) if info.HasField("death_info") else {}
        rows.append({"node_id": info.node_id.hex(), "alive": info.state == 0, "head": info.is_head_node,
                     "resources": dict(info.resources_total), "start_ms": info.start_time_ms,
                     "end_ms": info.end_time_ms, "death": death.get("reason", ""),
                     "death_message": death.get("reasonMessage", "")})
    return rows


if __name__ == "__main__":
    for row in node_table(sys.argv[1]):
        print(json.dumps(row))
