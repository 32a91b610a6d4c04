import Foundation
import Testing
@testable import WarehouseSimulator

@Suite struct TransportTests {
    @Test func missingAndInvalidTokens() async throws {
        let h = try Harness()
        h.token = ""
        let none = try await h.call("GET", "/api/2.0/sql/statements/x")
        #expect(none.status == 401)
        #expect(none.header("www-authenticate") == "Bearer realm=\"DatabricksRealm\"")
        #expect(none.header("x-databricks-reason-phrase") == "Credential was not sent or was of an unsupported type for this API.")
        #expect(none.json["error_code"] as? Int == 401)
        #expect(none.header("x-request-id") != nil)
        let basic = try await h.call("GET", "/api/2.0/sql/statements/x", headers: ["Authorization": "Basic Zm9vOmJhcg=="])
        #expect(basic.status == 401)
        let bad = try await h.call("POST", "/api/2.0/sql/statements", json: ["statement": "SELECT 1"], token: "dapi-wrong")
        #expect(bad.status == 403)
        #expect(bad.json["error_code"] as? Int == 403)
        #expect(bad.json["message"] as? String == "Invalid access token.")
        #expect(bad.header("x-databricks-reason-phrase") == "Invalid access token.")
        #expect(bad.header("content-type") == "application/json; charset=utf-8")
        let nowhere = try await h.call("GET", "/api/2.0/sql/nothing", token: "dapi-test-token")
        #expect(nowhere.status == 404)
    }

    @Test func oauthClientCredentials() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(clock: clock)
        let disc = try await h.call("GET", "/oidc/.well-known/oauth-authorization-server", token: "")
        #expect(disc.status == 200)
        #expect((disc.json["token_endpoint"] as? String)?.hasSuffix("/oidc/v1/token") == true)
        #expect((disc.json["grant_types_supported"] as? [String])?.contains("client_credentials") == true)
        let cfg = try await h.call("GET", "/.well-known/databricks-config", token: "")
        #expect(cfg.status == 200)

        func tokenRequest(_ form: String, basic: String?) async throws -> Reply {
            var headers = ["Content-Type": "application/x-www-form-urlencoded"]
            if let basic { headers["Authorization"] = "Basic " + Data(basic.utf8).base64EncodedString() }
            return try await h.send("POST", "/oidc/v1/token", headers: headers, body: Array(form.utf8))
        }
        let ok = try await tokenRequest("grant_type=client_credentials&scope=all-apis", basic: "test-client:test-secret")
        #expect(ok.status == 200)
        #expect(ok.json["token_type"] as? String == "Bearer")
        #expect(ok.json["expires_in"] as? Int == 3600)
        #expect(ok.json["scope"] as? String == "all-apis")
        let token = ok.json["access_token"] as! String
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses", token: token).status == 200)
        let post = try await tokenRequest(
            "grant_type=client_credentials&client_id=test-client&client_secret=test-secret&scope=sql", basic: nil)
        #expect(post.status == 200)
        let wrong = try await tokenRequest("grant_type=client_credentials&scope=all-apis", basic: "test-client:nope")
        #expect(wrong.status == 401)
        #expect(wrong.json["error"] as? String == "invalid_client")
        #expect(try await tokenRequest("grant_type=password", basic: "test-client:test-secret").status == 400)
        clock.advance(seconds: 3601)
        let expired = try await h.call("GET", "/api/2.0/sql/warehouses", token: token)
        #expect(expired.status == 403)
        #expect(expired.json["message"] as? String == "Invalid access token.")
    }

    @Test func externalLinksServeFilesWithoutAuthorization() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(configuration: .init(rowsPerExternalChunk: 2, linkTTL: 900), clock: clock)
        let r = try await h.execute("SELECT * FROM main.crm.customers", extra: ["disposition": "EXTERNAL_LINKS"])
        #expect(state(r) == "SUCCEEDED")
        let manifest = r["manifest"] as! [String: Any]
        #expect(manifest["total_chunk_count"] as? Int == 2)
        #expect((manifest["chunks"] as! [[String: Any]]).allSatisfy { $0["byte_count"] is Int })
        #expect(manifest["total_byte_count"] is Int)
        let result = r["result"] as! [String: Any]
        #expect(result["data_array"] == nil)
        #expect(result["next_chunk_index"] == nil)
        let link = (result["external_links"] as! [[String: Any]])[0]
        #expect(link["next_chunk_index"] as? Int == 1)
        #expect(link["next_chunk_internal_link"] as? String == "/api/2.0/sql/statements/\(r["statement_id"]!)/result/chunks/1")
        #expect((link["expiration"] as? String)?.hasSuffix("Z") == true)
        let url = URL(string: link["external_link"] as! String)!
        let target = url.path + "?" + url.query!
        let file = try await h.send("GET", target)
        #expect(file.status == 200)
        #expect(file.body.count == link["byte_count"] as? Int)
        let rows = try JSONSerialization.jsonObject(with: Data(file.body)) as! [[Any]]
        #expect(rows.count == 2)
        // The workspace token must not go to storage.
        let withAuth = try await h.send("GET", target, headers: ["Authorization": "Bearer dapi-test-token"])
        #expect(withAuth.status == 400)
        #expect(withAuth.text.contains("<Code>InvalidArgument</Code>"))
        #expect(!withAuth.text.contains("dapi-test-token"))
        let tampered = try await h.send("GET", target.replacingOccurrences(of: "/0?", with: "/1?"))
        #expect(tampered.status == 403)
        clock.advance(seconds: 901)
        let expired = try await h.send("GET", target)
        #expect(expired.status == 403)
        #expect(expired.text.contains("<Code>AccessDenied</Code><Message>Request has expired</Message>"))
        // The chunk endpoint hands out a fresh link.
        let again = try await h.call("GET", "/api/2.0/sql/statements/\(r["statement_id"]!)/result/chunks/0").json
        let fresh = (again["external_links"] as! [[String: Any]])[0]
        #expect(fresh["expiration"] as? String != link["expiration"] as? String)
        let u2 = URL(string: fresh["external_link"] as! String)!
        #expect(try await h.send("GET", u2.path + "?" + u2.query!).status == 200)
        let last = try await h.call("GET", "/api/2.0/sql/statements/\(r["statement_id"]!)/result/chunks/1").json
        let lastLink = (last["external_links"] as! [[String: Any]])[0]
        #expect(lastLink["next_chunk_index"] == nil)
        #expect(Set(last.keys) == ["external_links"])
    }

    @Test func csvLinksHaveTheHeaderOnlyInChunkZero() async throws {
        let h = try Harness(configuration: .init(rowsPerExternalChunk: 2))
        let r = try await h.execute("SELECT id, score FROM main.crm.customers VERSION AS OF 1", extra: ["disposition": "EXTERNAL_LINKS", "format": "CSV"])
        #expect((r["manifest"] as? [String: Any])?["format"] as? String == "CSV")
        var texts: [String] = []
        for i in 0..<2 {
            let chunk = try await h.call("GET", "/api/2.0/sql/statements/\(r["statement_id"]!)/result/chunks/\(i)").json
            let u = URL(string: ((chunk["external_links"] as! [[String: Any]])[0]["external_link"] as! String))!
            texts.append(try await h.send("GET", u.path + "?" + u.query!).text)
        }
        #expect(texts == ["id,score\r\n1,10.50\r\n2,7.25\r\n", "3,null\r\n"])
    }

    /// Over a socket: `reset_mid_body`, `drop` and `slow` happen on the wire (``TransportFaultHandler``).
    @Test func faultsAreInjectedAndConsumed() async throws {
        let h = try Harness(socket: true)
        let id = try await h.execute("SELECT id FROM main.crm.customers")["statement_id"] as! String
        let add = try await h.call(
            "POST", "/_sim/faults",
            json: ["match": ["method": "GET", "path_prefix": "/api/2.0/sql/statements"], "count": 1, "kind": "status", "status": 429, "retry_after": 1],
            token: "sim-admin")
        #expect(add.status == 200)
        let limited = try await h.call("GET", "/api/2.0/sql/statements/\(id)")
        #expect(limited.status == 429)
        #expect(limited.header("retry-after") == "1")
        #expect(limited.json["error_code"] as? String == "REQUEST_LIMIT_EXCEEDED")
        #expect(try await h.call("GET", "/api/2.0/sql/statements/\(id)").status == 200)

        h.sim.addFault(Fault(match: .init(method: "GET"), count: 1, kind: .resetMidBody))
        await #expect(throws: ClientError.self) { try await h.call("GET", "/api/2.0/sql/statements/\(id)") }
        #expect(try await h.call("GET", "/api/2.0/sql/statements/\(id)").status == 200)

        h.sim.addFault(Fault(match: .init(pathPrefix: "/api/2.0/sql/warehouses"), count: 1, kind: .drop))
        await #expect(throws: ClientError.self) { try await h.call("GET", "/api/2.0/sql/warehouses") }

        h.sim.addFault(Fault(count: 1, kind: .slow, delayMillis: 300))
        let start = Date()
        #expect(try await h.call("GET", "/api/2.0/sql/statements/\(id)").status == 200)
        #expect(Date().timeIntervalSince(start) >= 0.25)

        h.sim.addFault(Fault(count: 1, kind: .revokeToken))
        #expect(try await h.call("GET", "/api/2.0/sql/statements/\(id)").status == 403)
        #expect(try await h.call("GET", "/api/2.0/sql/statements/\(id)").status == 403)

        let bad = try await h.call("POST", "/_sim/faults", json: ["kind": "explode"], token: "sim-admin")
        #expect(bad.status == 400)
        #expect(
            bad.json["error"] as? String
                == "unknown fault kind explode; one of corrupt_body, drop, expire_links, proxy_status, queue, "
                + "reset_mid_body, revoke_token, slow, sql_error, status, tamper")
        #expect(try await h.call("DELETE", "/_sim/faults", token: "sim-admin").status == 200)
    }

    @Test func expireLinksFault() async throws {
        let h = try Harness()
        let r = try await h.execute("SELECT id FROM main.crm.customers", extra: ["disposition": "EXTERNAL_LINKS"])
        let u = URL(string: (((r["result"] as! [String: Any])["external_links"] as! [[String: Any]])[0]["external_link"] as! String))!
        h.sim.addFault(Fault(count: 1, kind: .expireLinks))
        // The fault waits for a blob download; API calls pass.
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses").status == 200)
        let first = try await h.send("GET", u.path + "?" + u.query!)
        #expect(first.status == 403)
        #expect(try await h.send("GET", u.path + "?" + u.query!).status == 200)
    }

    @Test func keepAliveAndChunkedRequestBodies() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 20_000, inlineByteLimit: nil), socket: true)
        try h.sim.addSyntheticTable(name: "main.crm.panel", rows: 50_000)
        let c = try TestConnection(port: h.port)
        let auth = ["Authorization": "Bearer dapi-test-token", "Content-Type": "application/json"]
        let body = Array(#"{"statement":"SELECT * FROM main.crm.panel","warehouse_id":"0a1b2c3d4e5f6071"}"#.utf8)
        let first = try c.request("POST", "/api/2.0/sql/statements", headers: auth, body: body)
        #expect(first.status == 200)
        let id = first.json["statement_id"] as! String
        var total = ((first.json["result"] as! [String: Any])["data_array"] as! [[Any]]).count
        for i in 1..<3 {
            let chunk = try c.request("GET", "/api/2.0/sql/statements/\(id)/result/chunks/\(i)", headers: auth)
            #expect(chunk.status == 200)
            total += (chunk.json["data_array"] as! [[Any]]).count
        }
        #expect(total == 50_000)
        // A chunked request body on the same connection.
        var raw = "POST /api/2.0/sql/statements/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dapi-test-token\r\nTransfer-Encoding: chunked\r\n\r\n"
        let json = String(decoding: body, as: UTF8.self)
        let a = String(json.prefix(20)), b = String(json.dropFirst(20))
        raw += String(a.utf8.count, radix: 16) + "\r\n" + a + "\r\n" + String(b.utf8.count, radix: 16) + "\r\n" + b + "\r\n0\r\n\r\n"
        try c.sendRaw(Array(raw.utf8))
        let chunked = try c.readReply()
        #expect(chunked.status == 200)
        #expect(state(chunked.json) == "SUCCEEDED")
        // Expect: 100-continue (libcurl sends it before a large body): the interim answer comes before the body.
        let head = "POST /api/2.0/sql/statements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dapi-test-token\r\n"
            + "Content-Length: \(body.count)\r\nExpect: 100-continue\r\n\r\n"
        try c.sendRaw(Array(head.utf8))
        #expect(try c.readReply().status == 100)
        try c.sendRaw(body)
        let continued = try c.readReply()
        #expect(continued.status == 200)
        #expect(state(continued.json) == "SUCCEEDED")
    }

    /// What no route takes is answered per prefix, after authentication where the path needs it.
    @Test func unroutedPathsAndMethods() async throws {
        let h = try Harness()
        // The SQL API authenticates before it says a path does not exist.
        h.token = ""
        #expect(try await h.call("GET", "/api/2.0/sql/nothing").status == 401)
        h.token = "dapi-test-token"
        let nowhere = try await h.call("PATCH", "/api/2.0/sql/statements")
        #expect(nowhere.status == 404)
        #expect(nowhere.json["error_code"] as? String == "ENDPOINT_NOT_FOUND")
        #expect(nowhere.json["message"] as? String == "No API found for 'PATCH /api/2.0/sql/statements'")
        #expect(try await h.call("GET", "/oidc/v1/token").json["error_code"] as? String == "ENDPOINT_NOT_FOUND")
        // A trailing slash is the same path.
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses/").status == 200)
        // The admin interface: the token first, then its own 404.
        #expect(try await h.call("GET", "/_sim/nothing", token: "nope").status == 401)
        let admin = try await h.call("GET", "/_sim/nothing", token: "sim-admin")
        #expect(admin.status == 404)
        #expect(admin.json["error"] as? String == "no admin endpoint GET /_sim/nothing")
        // The webhook receiver takes POST /_hook/<name> only.
        #expect(try await h.call("GET", "/_hook/a").text == #"{"error":"POST /_hook/<name>"}"#)
        #expect(try await h.call("POST", "/_hook/a/b", json: [:]).status == 404)
        #expect(try await h.call("POST", "/_hook/a", json: ["x": 1]).status == 200)
        // Blob storage answers like S3.
        let put = try await h.call("PUT", "/_blob/x/0", authorize: false)
        #expect(put.status == 405)
        #expect(put.text.contains("<Code>MethodNotAllowed</Code>"))
        #expect(try await h.call("GET", "/_blob/x", authorize: false).text.contains("<Code>SignatureDoesNotMatch</Code>"))
        // Every answer carries a request id and the server name.
        #expect(put.header("x-request-id") != nil)
        #expect(put.header("server") == "databricks")
    }

    @Test func healthAndClockAdmin() async throws {
        let clock = SimulatorClock.manual(start: 1_767_225_600)
        let h = try Harness(clock: clock)
        let health = try await h.call("GET", "/_sim/health", token: "sim-admin")
        #expect(health.json["status"] as? String == "ok")
        #expect(health.json["clock"] as? String == "2026-01-01T00:00:00.000Z")
        let adv = try await h.call("POST", "/_sim/clock/advance", json: ["seconds": 90], token: "sim-admin")
        #expect(adv.json["clock"] as? String == "2026-01-01T00:01:30.000Z")
        #expect(try await h.call("GET", "/_sim/health", token: "wrong").status == 401)
        let newTable = try await h.call(
            "POST", "/_sim/tables", json: ["name": "main.crm.bench", "synthetic": ["seed": 3, "rows": 10]], token: "sim-admin")
        #expect(newTable.status == 200)
        #expect(newTable.json["latest_version"] as? Int == 1)
        let syn = try await h.call("POST", "/_sim/tables/main.crm.bench/synthetic-commit", json: ["update_fraction": 0.5], token: "sim-admin")
        #expect(syn.json["version"] as? Int == 2)
        #expect(try await h.call("GET", "/_sim/tables/main.crm.bench", token: "sim-admin").json["latest_version"] as? Int == 2)
    }

    @Test func sessionsSetDefaultsForStatements() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let created = try await h.call("POST", "/api/2.0/sql/sessions/", json: ["warehouse_id": Harness.warehouse, "catalog": "main", "schema": "crm"])
        #expect(created.status == 200)
        let sid = created.json["session_id"] as! String
        let r = try await h.execute("SELECT id FROM customers", extra: ["session_id": sid])
        #expect((r["manifest"] as? [String: Any])?["total_row_count"] as? Int == 3)
        let deleted = try await h.call("DELETE", "/api/2.0/sql/sessions/\(sid)?warehouse_id=\(Harness.warehouse)")
        #expect(deleted.status == 200 && deleted.text == "{}")
        let gone = try await h.call("POST", "/api/2.0/sql/statements", json: ["statement": "SELECT 1", "warehouse_id": Harness.warehouse, "session_id": sid])
        #expect(gone.status == 404)
    }
}
