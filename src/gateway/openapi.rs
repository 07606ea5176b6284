//! The OpenAPI description served at `/openapi.json`.

pub const DOCUMENT: &str = r##"{
  "openapi": "3.0.3",
  "info": {"title": "dstore gateway", "version": "1", "description": "Read-only HTTP access to a dstore DNS event store. When the gateway listens beyond loopback, every route but /, /ui/* and /healthz needs Authorization: Bearer <token>."},
  "components": {
    "parameters": {
      "from": {"name": "from", "in": "query", "description": "Events at or after this time: unix seconds, RFC 3339, now, or relative (-15m, -2h, -7d)", "schema": {"type": "string"}},
      "to": {"name": "to", "in": "query", "description": "Events before this time", "schema": {"type": "string"}},
      "last": {"name": "last", "in": "query", "description": "Events of the last duration (1h, 30m, 7d)", "schema": {"type": "string"}},
      "q": {"name": "q", "in": "query", "description": "dstore 1.x search words, space separated: a domain name (it and below), an address or range (either side), ~ANSWER, =MESSAGE-ID, c:REQUESTOR-ID, d:DEVICE-ID, dn:DEVICE-NAME, rcode:3, rcode:!0, t=week, pr=POLICY", "schema": {"type": "string"}},
      "qname": {"name": "qname", "in": "query", "description": "Exact query name (repeatable)", "schema": {"type": "string"}},
      "domain": {"name": "domain", "in": "query", "description": "A name and every name under it (repeatable)", "schema": {"type": "string"}},
      "qname_regex": {"name": "qname_regex", "in": "query", "schema": {"type": "string"}},
      "qname_glob": {"name": "qname_glob", "in": "query", "schema": {"type": "string"}},
      "qtype": {"name": "qtype", "in": "query", "description": "A, AAAA, MX, ... or a number (repeatable)", "schema": {"type": "string"}},
      "rcode": {"name": "rcode", "in": "query", "description": "NOERROR, NXDOMAIN, ... or a number; ! negates (repeatable)", "schema": {"type": "string"}},
      "type": {"name": "type", "in": "query", "description": "query, response, outgoing-query, incoming-response (repeatable)", "schema": {"type": "string"}},
      "requestor": {"name": "requestor", "in": "query", "description": "Client address or range", "schema": {"type": "string"}},
      "responder": {"name": "responder", "in": "query", "description": "Server address or range", "schema": {"type": "string"}},
      "answer": {"name": "answer", "in": "query", "description": "Address or range in A/AAAA answers, or a name in any answer", "schema": {"type": "string"}},
      "ecs": {"name": "ecs", "in": "query", "schema": {"type": "string"}},
      "id": {"name": "id", "in": "query", "description": "Message id (UUID)", "schema": {"type": "string"}},
      "policy": {"name": "policy", "in": "query", "schema": {"type": "string"}},
      "tag": {"name": "tag", "in": "query", "schema": {"type": "string"}},
      "protocol": {"name": "protocol", "in": "query", "description": "udp, tcp, dot, doh, doq", "schema": {"type": "string"}},
      "server_identity": {"name": "server_identity", "in": "query", "schema": {"type": "string"}},
      "requestor_id": {"name": "requestor_id", "in": "query", "schema": {"type": "string"}},
      "device_id": {"name": "device_id", "in": "query", "schema": {"type": "string"}},
      "device_name": {"name": "device_name", "in": "query", "schema": {"type": "string"}}
    },
    "schemas": {
      "Error": {"type": "object", "properties": {"error": {"type": "string"}, "parameter": {"type": "string"}}, "required": ["error"]},
      "Event": {"type": "object", "description": "One DNS event: the dstore 1.x keys (answer, origRequestor, preason, qid, qr, question, rcode, requestor, responder, tags, timeSec, timeUsec, type) then every other field present (messageType, rrs, latencyUsec, ...)", "additionalProperties": true}
    },
    "responses": {
      "BadRequest": {"description": "A parameter is wrong; the body says which and why", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Busy": {"description": "Too many searches at once", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  },
  "paths": {
    "/api/v1/search": {"get": {
      "summary": "Events matching the conditions, newest first, paged",
      "parameters": [{"$ref": "#/components/parameters/from"}, {"$ref": "#/components/parameters/to"}, {"$ref": "#/components/parameters/last"}, {"$ref": "#/components/parameters/q"}, {"$ref": "#/components/parameters/qname"}, {"$ref": "#/components/parameters/domain"}, {"$ref": "#/components/parameters/qname_regex"}, {"$ref": "#/components/parameters/qname_glob"}, {"$ref": "#/components/parameters/qtype"}, {"$ref": "#/components/parameters/rcode"}, {"$ref": "#/components/parameters/type"}, {"$ref": "#/components/parameters/requestor"}, {"$ref": "#/components/parameters/responder"}, {"$ref": "#/components/parameters/answer"}, {"$ref": "#/components/parameters/ecs"}, {"$ref": "#/components/parameters/id"}, {"$ref": "#/components/parameters/policy"}, {"$ref": "#/components/parameters/tag"}, {"$ref": "#/components/parameters/protocol"}, {"$ref": "#/components/parameters/server_identity"}, {"$ref": "#/components/parameters/requestor_id"}, {"$ref": "#/components/parameters/device_id"}, {"$ref": "#/components/parameters/device_name"},
        {"name": "limit", "in": "query", "description": "Events per page (default 100, capped)", "schema": {"type": "integer", "minimum": 1}},
        {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["newest", "oldest"]}},
        {"name": "cursor", "in": "query", "description": "The next value of the previous page", "schema": {"type": "string"}}],
      "responses": {
        "200": {"description": "A page of events", "content": {"application/json": {"schema": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}, "number": {"type": "integer"}, "msec": {"type": "number"}, "next": {"type": "string", "nullable": true}, "timedOut": {"type": "boolean"}}}}}},
        "400": {"$ref": "#/components/responses/BadRequest"}, "503": {"$ref": "#/components/responses/Busy"}}}},
    "/api/v1/summary": {"get": {
      "summary": "Events per interval, top names and clients, rcode and qtype breakdowns, in one pass",
      "parameters": [{"$ref": "#/components/parameters/from"}, {"$ref": "#/components/parameters/to"}, {"$ref": "#/components/parameters/last"}, {"$ref": "#/components/parameters/q"}, {"$ref": "#/components/parameters/qname"}, {"$ref": "#/components/parameters/domain"}, {"$ref": "#/components/parameters/qtype"}, {"$ref": "#/components/parameters/rcode"}, {"$ref": "#/components/parameters/type"}, {"$ref": "#/components/parameters/requestor"}, {"$ref": "#/components/parameters/responder"}, {"$ref": "#/components/parameters/qname_regex"}, {"$ref": "#/components/parameters/qname_glob"}, {"$ref": "#/components/parameters/answer"}, {"$ref": "#/components/parameters/ecs"}, {"$ref": "#/components/parameters/id"}, {"$ref": "#/components/parameters/policy"}, {"$ref": "#/components/parameters/tag"}, {"$ref": "#/components/parameters/protocol"}, {"$ref": "#/components/parameters/server_identity"}, {"$ref": "#/components/parameters/requestor_id"}, {"$ref": "#/components/parameters/device_id"}, {"$ref": "#/components/parameters/device_name"},
        {"name": "interval", "in": "query", "description": "Histogram interval: seconds or 1m, 1h (default: about 120 bars over the range)", "schema": {"type": "string"}},
        {"name": "top", "in": "query", "description": "Rows in each top table (default 10)", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
      "responses": {
        "200": {"description": "The summary", "content": {"application/json": {"schema": {"type": "object", "properties": {"total": {"type": "integer"}, "histogram": {"type": "object"}, "top": {"type": "object"}, "msec": {"type": "number"}, "timedOut": {"type": "boolean"}}}}}},
        "400": {"$ref": "#/components/responses/BadRequest"}, "503": {"$ref": "#/components/responses/Busy"}}}},
    "/api/v1/event/{id}": {"get": {
      "summary": "The events sharing a message id: a query and its response",
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "The events", "content": {"application/json": {"schema": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}}}}, "400": {"$ref": "#/components/responses/BadRequest"}, "404": {"description": "No event has that id"}}}},
    "/get-endpoint-data": {"get": {
      "summary": "The dstore 1.x egateway search",
      "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}, {"name": "start", "in": "query", "schema": {"type": "integer"}}, {"name": "end", "in": "query", "schema": {"type": "integer"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}, {"name": "preasons", "in": "query", "schema": {"type": "string"}}, {"name": "preasons_tags", "in": "query", "schema": {"type": "string"}}, {"name": "has_preason", "in": "query", "schema": {"type": "boolean"}}, {"name": "only_responses", "in": "query", "schema": {"type": "boolean"}}, {"name": "outgoing", "in": "query", "schema": {"type": "boolean"}}],
      "responses": {"200": {"description": "Matching events, newest first", "content": {"application/json": {"schema": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}}}}, "400": {"$ref": "#/components/responses/BadRequest"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {}}}}}},
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
    "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}}
  }
}
"##;
