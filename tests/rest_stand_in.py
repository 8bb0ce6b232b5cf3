"""A local HTTP endpoint that follows TensorFlow Serving's documented REST predict format and
answers with a real SavedModel. It stands in for the model server, which cannot be installed
on the test machines (it is not on PyPI or Debian); the client code under test is the same."""

import http.server
import json
import re
import threading

import numpy as np
import tensorflow as tf

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(/versions/(?P<version>\d+))?:predict$")


class RestStandIn:
    """Serves {name: {version: loaded SavedModel}} on 127.0.0.1 at a free port."""

    def __init__(self, models):
        self.models = models
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        models = self.models

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, payload):
                body = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                match = _PATH.match(self.path)
                if not match or match["name"] not in models:
                    return self._reply(404, {"error": f"Servable not found for request: {self.path}"})
                versions = models[match["name"]]
                version = int(match["version"]) if match["version"] else max(versions)
                if version not in versions:
                    return self._reply(404, {"error": f"Servable not found: version {version}"})
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                signature = request.get("signature_name", "serving_default")
                function = versions[version].signatures.get(signature)
                if function is None:
                    return self._reply(400, {"error": f"Serving signature name: \"{signature}\" not found"})
                specs = function.structured_input_signature[1]
                if "instances" in request:  # row format: one dict (or bare value) per example
                    rows = request["instances"]
                    columns = {name: [row[name] if isinstance(row, dict) else row for row in rows]
                               for name in specs}
                else:
                    columns = request["inputs"]
                tensors = {name: tf.constant(columns[name], dtype=spec.dtype) for name, spec in specs.items()}
                outputs = {key: _jsonable(value.numpy()) for key, value in function(**tensors).items()}
                if "instances" in request:
                    count = len(next(iter(outputs.values())))
                    return self._reply(200, {"predictions": [{key: value[i] for key, value in outputs.items()}
                                                             for i in range(count)]})
                return self._reply(200, {"outputs": outputs})

        return Handler


def _jsonable(array):
    if array.dtype == object:
        return np.vectorize(lambda value: value.decode("utf-8"), otypes=[object])(array).tolist()
    return array.tolist()
