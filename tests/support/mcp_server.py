"""A stdio MCP server for tests: what the CLI starts from an --mcp-config, in one Python
source string (so it fits a ConfigMap value: `python3 -c MCP_SERVER`)."""

# A stdio MCP server with one tool, as small as the protocol allows (newline-delimited
# JSON-RPC: initialize, tools/list, tools/call).
MCP_SERVER = """
import json, sys
def send(id, result):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": id, "result": result}) + "\\n")
    sys.stdout.flush()
for line in sys.stdin:
    request = json.loads(line)
    method, id = request.get("method"), request.get("id")
    if id is None:
        continue
    if method == "initialize":
        send(id, {"protocolVersion": request["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "shout", "version": "1"}})
    elif method == "tools/list":
        send(id, {"tools": [{"name": "shout", "description": "Upper-case a text",
                  "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                                  "required": ["text"]}}]})
    elif method == "tools/call":
        send(id, {"content": [{"type": "text",
                               "text": request["params"]["arguments"]["text"].upper()}]})
    else:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": id,
                                     "error": {"code": -32601, "message": method}}) + "\\n")
        sys.stdout.flush()
"""
