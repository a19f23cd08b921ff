import FakeAPIServerKit
import KLCore
import Testing

private let cms = "/api/v1/namespaces/default/configmaps"
private let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"

@Suite("kube-apiserver-fake: objects, resourceVersions and Status bodies", .timeLimit(.minutes(1)))
struct CRUDTests {
    @Test func configMap_createGetReplaceDelete_followsResourceVersions() throws {
        let h = try Harness()
        let created = try h.request("POST", cms, body: ["metadata": ["name": "lock", "annotations": ["a": "1"]], "data": ["k": "v"]])
        #expect(created.status == 201)
        let rv1 = try #require(created.json[path: "metadata", "resourceVersion"]?.stringValue)
        #expect(created.json["kind"] == "ConfigMap")
        #expect(created.json["apiVersion"] == "v1")
        #expect(created.json[path: "metadata", "namespace"] == "default")
        #expect(created.json[path: "metadata", "uid"]?.stringValue?.count == 36)
        #expect(created.json[path: "metadata", "creationTimestamp"]?.stringValue?.hasSuffix("Z") == true)

        let got = try h.request("GET", "\(cms)/lock")
        #expect(got.status == 200)
        #expect(got.json[path: "data", "k"] == "v")

        var next = got.json
        next[path: "data", "k"] = "w"
        next["extra"] = ["unknown": true]   // fields the fake does not know are kept
        let updated = try h.request("PUT", "\(cms)/lock", body: next)
        #expect(updated.status == 200)
        let rv2 = try #require(updated.json[path: "metadata", "resourceVersion"]?.stringValue)
        #expect(Int(rv2)! > Int(rv1)!)
        #expect(updated.json[path: "extra", "unknown"] == true)
        #expect(updated.json[path: "metadata", "uid"] == created.json[path: "metadata", "uid"])

        let deleted = try h.request("DELETE", "\(cms)/lock")
        #expect(deleted.status == 200)
        #expect(deleted.json["status"] == "Success")
        let missing = try h.request("GET", "\(cms)/lock")
        #expect(missing.status == 404)
    }

    @Test func update_withStaleResourceVersion_returnsConflictStatus() throws {
        let h = try Harness()
        let created = try h.request("POST", cms, body: ["metadata": ["name": "x"], "data": ["n": "1"]])
        var stale = created.json
        _ = try h.request("PUT", "\(cms)/x", body: created.json)   // same content: no new RV
        var fresh = created.json
        fresh[path: "data", "n"] = "2"
        #expect(try h.request("PUT", "\(cms)/x", body: fresh).status == 200)
        stale[path: "data", "n"] = "3"
        let conflict = try h.request("PUT", "\(cms)/x", body: stale)
        #expect(conflict.status == 409)
        #expect(conflict.json == [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure",
            "message": "Operation cannot be fulfilled on configmaps \"x\": the object has been modified; please apply your changes to the latest version and try again",
            "reason": "Conflict", "details": ["name": "x", "kind": "configmaps"], "code": 409,
        ])
        // Without a resourceVersion the update is unconditional, as on the real server.
        stale[path: "metadata", "resourceVersion"] = nil
        #expect(try h.request("PUT", "\(cms)/x", body: stale).status == 200)
        #expect(h.server.object("\(cms)/x")?[path: "data", "n"] == "3")
    }

    @Test func create_existingName_returnsAlreadyExists() throws {
        let h = try Harness()
        #expect(try h.request("POST", cms, body: ["metadata": ["name": "dup"]]).status == 201)
        let again = try h.request("POST", cms, body: ["metadata": ["name": "dup"]])
        #expect(again.status == 409)
        #expect(again.json["reason"] == "AlreadyExists")
        #expect(again.json["message"] == "configmaps \"dup\" already exists")
    }

    @Test func create_withGenerateName_addsFiveCharacterSuffix() throws {
        let h = try Harness()
        let created = try h.request("POST", cms, body: ["metadata": ["generateName": "job-"]])
        let name = try #require(created.json[path: "metadata", "name"]?.stringValue)
        #expect(name.hasPrefix("job-") && name.count == 9)
    }

    @Test func create_invalidName_returns422WithCause() throws {
        let h = try Harness()
        let bad = try h.request("POST", cms, body: ["metadata": ["name": "Bad_Name"]])
        #expect(bad.status == 422)
        #expect(bad.json["reason"] == "Invalid")
        #expect(bad.json[path: "details", "kind"] == "ConfigMap")
        #expect(bad.json["message"]?.stringValue?.hasPrefix("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain") == true)
        #expect(bad.json[path: "details", "causes"]?[0]?["field"] == "metadata.name")
        #expect(bad.json[path: "details", "causes"]?[0]?["reason"] == "FieldValueInvalid")
    }

    @Test func nonStringAnnotationOrData_isRejectedWith400() throws {
        let h = try Harness()
        let annotation = try h.request("POST", cms, body: ["metadata": ["name": "a", "annotations": ["n": 1]]])
        #expect(annotation.status == 400)
        #expect(annotation.json["message"] == "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.annotations of type string")
        let data = try h.request("POST", cms, body: ["metadata": ["name": "b"], "data": ["k": true]])
        #expect(data.status == 400)
        #expect(try h.request("POST", cms, body: ["metadata": ["name": "c", "labels": ["k": "v"]], "data": ["k": "v"]]).status == 201)
    }

    @Test func lease_missing_returnsGroupQualifiedNotFound() throws {
        let h = try Harness()
        let missing = try h.request("GET", "\(leases)/lock")
        #expect(missing.status == 404)
        #expect(missing.json["message"] == "leases.coordination.k8s.io \"lock\" not found")
        #expect(missing.json["details"] == ["name": "lock", "group": "coordination.k8s.io", "kind": "leases"])
    }

    @Test func lease_microTimeWithThreeDigits_isRejectedLikeTheRealServer() throws {
        let h = try Harness()
        let good: JSON = ["apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": ["name": "l"],
                          "spec": ["holderIdentity": "a", "leaseDurationSeconds": 15,
                                   "acquireTime": "2026-11-28T10:00:00.123456Z", "renewTime": "2026-11-28T10:00:00.123456Z"]]
        #expect(try h.request("POST", leases, body: good).status == 201)
        var bad = good
        bad[path: "metadata", "name"] = "m"
        bad[path: "spec", "renewTime"] = "2026-11-28T10:00:00.123Z"
        let rejected = try h.request("POST", leases, body: bad)
        #expect(rejected.status == 400)
        #expect(rejected.json["reason"] == "BadRequest")
    }

    @Test func patch_mergeAndJSONPatch_applyAndKeepOtherFields() throws {
        let h = try Harness()
        _ = try h.request("POST", cms, body: ["metadata": ["name": "p", "labels": ["a": "1"]], "data": ["x": "1", "y": "2"]])
        let merged = try h.request("PATCH", "\(cms)/p", body: ["data": ["x": nil, "z": "3"]], contentType: "application/merge-patch+json")
        #expect(merged.status == 200)
        #expect(merged.json["data"] == ["y": "2", "z": "3"])
        #expect(merged.json[path: "metadata", "labels", "a"] == "1")
        let patched = try h.request("PATCH", "\(cms)/p", body: [["op": "replace", "path": "/data/y", "value": "9"],
                                                               ["op": "add", "path": "/metadata/labels/b", "value": "2"]],
                                    contentType: "application/json-patch+json")
        #expect(patched.status == 200)
        #expect(patched.json[path: "data", "y"] == "9")
        #expect(patched.json[path: "metadata", "labels", "b"] == "2")
        let strategic = try h.request("PATCH", "\(cms)/p", body: ["data": ["w": "4"]], contentType: "application/strategic-merge-patch+json")
        #expect(strategic.json[path: "data", "w"] == "4")
        let stale = try h.request("PATCH", "\(cms)/p", body: ["metadata": ["resourceVersion": "1"], "data": ["w": "5"]],
                                  contentType: "application/merge-patch+json")
        #expect(stale.status == 409)
        let missing = try h.request("PATCH", "\(cms)/nope", body: ["data": [:]], contentType: "application/merge-patch+json")
        #expect(missing.status == 404)
    }

    @Test func list_withLabelAndFieldSelectors_filters() throws {
        let h = try Harness()
        for (name, app, tier) in [("a", "web", "front"), ("b", "web", "back"), ("c", "db", "back")] {
            _ = try h.request("POST", cms, body: ["metadata": ["name": .string(name), "labels": ["app": .string(app), "tier": .string(tier)]]])
        }
        func names(_ query: String) throws -> [String] {
            let list = try h.request("GET", "\(cms)?\(query)")
            #expect(list.json["kind"] == "ConfigMapList")
            return (list.json["items"]?.arrayValue ?? []).compactMap { $0[path: "metadata", "name"]?.stringValue }
        }
        #expect(try names("labelSelector=app%3Dweb") == ["a", "b"])
        #expect(try names("labelSelector=app%3Dweb,tier!%3Dback") == ["a"])
        #expect(try names("labelSelector=tier") == ["a", "b", "c"])
        #expect(try names("labelSelector=app+in+(db,web),tier%3Dback") == ["b", "c"])
        #expect(try names("fieldSelector=metadata.name%3Dc") == ["c"])
    }

    @Test func delete_withStalePrecondition_returnsConflict() throws {
        let h = try Harness()
        _ = try h.request("POST", cms, body: ["metadata": ["name": "d"]])
        let r = try h.request("DELETE", "\(cms)/d", body: ["kind": "DeleteOptions", "apiVersion": "v1", "preconditions": ["resourceVersion": "1"]])
        #expect(r.status == 409)
        #expect(h.server.object("\(cms)/d") != nil)
    }

    @Test func directAccess_putAndObject_bypassHTTP() throws {
        let h = try Harness()
        h.server.put("\(cms)/direct", ["data": ["k": "v"]])
        let o = try #require(h.server.object("\(cms)/direct"))
        #expect(o["kind"] == "ConfigMap")
        #expect(o[path: "metadata", "namespace"] == "default")
        #expect(try h.request("GET", "\(cms)/direct").json[path: "data", "k"] == "v")
    }
}

@Suite("kube-apiserver-fake: authentication and authorization", .timeLimit(.minutes(1)))
struct AuthTests {
    @Test func request_withoutOrWithUnknownToken_returns401Status() throws {
        let h = try Harness()
        for token: String? in [nil, "wrong"] {
            let r = try h.rawRequest("GET", cms, body: nil, token: token)
            #expect(r.status == 401)
            #expect(r.json == ["kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401])
        }
    }

    @Test func registeredToken_outsideAllowList_returns403WithRealMessage() throws {
        let h = try Harness()
        _ = try h.request("POST", cms, body: ["metadata": ["name": "x"]])
        let reg = try h.rawRequest("POST", "/fake/tokens", body: #"{"token":"limited","user":"system:serviceaccount:default:leader","allow":["get configmaps","watch configmaps"]}"#, token: nil)
        #expect(reg.status == 201)
        #expect(try h.request("GET", "\(cms)/x", token: "limited").status == 200)
        let denied = try h.request("PUT", "\(cms)/x", body: ["metadata": ["name": "x"]], token: "limited")
        #expect(denied.status == 403)
        #expect(denied.json["reason"] == "Forbidden")
        #expect(denied.json["message"] == "configmaps \"x\" is forbidden: User \"system:serviceaccount:default:leader\" cannot update resource \"configmaps\" in API group \"\" in the namespace \"default\"")
        #expect(denied.json["details"] == ["name": "x", "kind": "configmaps"])
        let lease = try h.request("GET", "\(leases)/y", token: "limited")
        #expect(lease.json["message"] == "leases.coordination.k8s.io \"y\" is forbidden: User \"system:serviceaccount:default:leader\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"default\"")
        #expect(lease.json["details"] == ["name": "y", "group": "coordination.k8s.io", "kind": "leases"])
    }

    @Test func stats_countRequestsPerTokenPrefixAndVerb() throws {
        let h = try Harness()
        h.server.registerToken("abcdefgh-rest-of-token", user: "u")
        _ = try h.request("POST", cms, body: ["metadata": ["name": "s"]], token: "abcdefgh-rest-of-token")
        _ = try h.request("GET", "\(cms)/s", token: "abcdefgh-rest-of-token")
        _ = try h.request("GET", cms, token: "abcdefgh-rest-of-token")
        let stats = try h.rawRequest("GET", "/fake/stats", body: nil, token: nil).json
        #expect(stats[path: "byToken", "abcdefgh"] == ["get": 1, "list": 1, "watch": 0, "create": 1, "update": 0, "patch": 0, "delete": 0])
        #expect(stats["total"] == 3)
        _ = try h.rawRequest("POST", "/fake/stats/reset", body: nil, token: nil)
        #expect(h.server.requestStats()["total"] == 0)
    }
}
