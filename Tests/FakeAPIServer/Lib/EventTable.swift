import KLCore

/// `kubectl get events` asks for a server-side Table (`Accept: ...;as=Table`);
/// the real API server answers with these columns, so the fake does too.
enum EventTable {
    static func wanted(_ request: HTTPRequest, _ r: ResourceType) -> Bool {
        r == .events && (request.headers["accept"] ?? "").contains("as=Table")
    }

    static func table(_ items: [JSON], rv: Int) -> JSON {
        let columns: [JSON] = ["Last Seen", "Type", "Reason", "Object", "Message"].map {
            ["name": .string($0), "type": "string", "format": "", "description": "", "priority": 0]
        }
        let rows: [JSON] = items.map { e in
            let kind = (e[path: "involvedObject", "kind"]?.stringValue ?? "").lowercased()
            let object = "\(kind)/\(e[path: "involvedObject", "name"]?.stringValue ?? "")"
            var metadata = e["metadata"] ?? .object(JSONObject())
            metadata["managedFields"] = nil
            return [
                "cells": [.string(e["lastTimestamp"]?.stringValue ?? ""), e["type"] ?? "", e["reason"] ?? "",
                          .string(object), e["message"] ?? ""],
                "object": ["kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata],
            ]
        }
        return ["kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": ["resourceVersion": .string(String(rv))],
                "columnDefinitions": .array(columns), "rows": .array(rows)]
    }
}
