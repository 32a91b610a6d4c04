import CDFSyncCore
import Foundation
import Synchronization
import NIOCore

/// The workspace API's endpoints besides statements: sessions, warehouses, OAuth, and the blob storage external links
/// point to. Routed in Router.swift.
extension Simulator {
    // MARK: sessions (used by the JDBC driver; optional for SEA clients)

    func createSession(_ req: APIRequest, principal: Int) -> APIResponse {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any],
            let wid = obj["warehouse_id"] as? String
        else { return APIError(400, "INVALID_PARAMETER_VALUE", "warehouse_id is required.").response() }
        if let e = warehouseAccess(wid, principal: principal, need: ["CAN_USE", "CAN_MANAGE", "IS_OWNER"]) {
            return e.response()
        }
        let id = state.withLock { s -> String in
            let id = newStatementID(&s)
            s.sessions[id] = (principal, wid, obj["catalog"] as? String, obj["schema"] as? String)
            return id
        }
        var w = JSONWriter()
        w.beginObject()
        w.key("session_id")
        w.string(id)
        w.endObject()
        return APIResponse(status: 200, json: w.bytes)
    }

    func deleteSession(_ id: String, principal: Int) -> APIResponse {
        let found = state.withLock { s -> Bool in
            guard let x = s.sessions[id], x.principal == principal else { return false }
            s.sessions[id] = nil
            return true
        }
        guard found else { return APIError(404, "NOT_FOUND", "Session \(id) not found.").response() }
        return APIResponse(status: 200, json: Array("{}".utf8))
    }

    // MARK: warehouses

    func warehouseJSON(_ w: WarehouseState, host: String, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id"); writer.string(w.def.id)
        writer.key("name"); writer.string(w.def.name)
        writer.key("cluster_size"); writer.string("Small")
        writer.key("min_num_clusters"); writer.int(1)
        writer.key("max_num_clusters"); writer.int(1)
        writer.key("auto_stop_mins"); writer.int(120)
        writer.key("creator_name"); writer.string("admin@example.com")
        writer.key("num_clusters"); writer.int(w.state == "RUNNING" ? 1 : 0)
        writer.key("num_active_sessions"); writer.int(0)
        writer.key("state"); writer.string(w.state)
        writer.key("enable_photon"); writer.bool(true)
        writer.key("enable_serverless_compute"); writer.bool(false)
        writer.key("warehouse_type"); writer.string("PRO")
        writer.key("spot_instance_policy"); writer.string("COST_OPTIMIZED")
        writer.key("channel"); writer.beginObject(); writer.key("name"); writer.string("CHANNEL_NAME_CURRENT"); writer.endObject()
        writer.key("tags"); writer.beginObject(); writer.endObject()
        let hostname = host.split(separator: ":").first.map(String.init) ?? host
        writer.key("jdbc_url")
        writer.string("jdbc:databricks://\(hostname):443/default;transportMode=http;ssl=1;AuthMech=3;httpPath=/sql/1.0/warehouses/\(w.def.id);")
        writer.key("odbc_params")
        writer.beginObject()
        writer.key("hostname"); writer.string(hostname)
        writer.key("path"); writer.string("/sql/1.0/warehouses/\(w.def.id)")
        writer.key("protocol"); writer.string("https")
        writer.key("port"); writer.int(443)
        writer.endObject()
        if w.state == "RUNNING" {
            writer.key("health"); writer.beginObject(); writer.key("status"); writer.string("HEALTHY"); writer.endObject()
        }
        writer.endObject()
    }

    func listWarehouses(principal: Int, host: String) -> APIResponse {
        let now = clock.now
        var w = JSONWriter()
        state.withLock { s in
            let p = s.principals[principal]
            w.beginObject()
            w.key("warehouses")
            w.beginArray()
            for id in s.warehouseOrder where p.warehouses[id] != nil {
                s.warehouses[id]!.settle(now: now)
                warehouseJSON(s.warehouses[id]!, host: host, into: &w)
            }
            w.endArray()
            w.endObject()
        }
        return APIResponse(status: 200, json: w.bytes)
    }

    func warehouseAccess(_ id: String, principal: Int, need: Set<String>) -> APIError? {
        state.withLock { s in
            guard s.warehouses[id] != nil else {
                return APIError(404, "RESOURCE_DOES_NOT_EXIST", "Warehouse \(id) does not exist.")
            }
            let p = s.principals[principal]
            guard let perm = p.warehouses[id]?.uppercased(), need.contains(perm) else {
                return APIError(403, "PERMISSION_DENIED", "User \(p.name) does not have the required permission on warehouse \(id).")
            }
            return nil
        }
    }

    func getWarehouse(_ id: String, principal: Int, host: String) -> APIResponse {
        if let e = warehouseAccess(id, principal: principal, need: ["CAN_USE", "CAN_MANAGE", "IS_OWNER", "CAN_MONITOR", "CAN_VIEW"]) {
            return e.response()
        }
        let now = clock.now
        var w = JSONWriter()
        state.withLock { s in
            s.warehouses[id]!.settle(now: now)
            warehouseJSON(s.warehouses[id]!, host: host, into: &w)
        }
        return APIResponse(status: 200, json: w.bytes)
    }

    func startStopWarehouse(_ id: String, start: Bool, principal: Int) -> APIResponse {
        let need: Set<String> = start ? ["CAN_USE", "CAN_MANAGE", "IS_OWNER"] : ["CAN_MANAGE", "IS_OWNER"]
        if let e = warehouseAccess(id, principal: principal, need: need) { return e.response() }
        let now = clock.now
        state.withLock { s in
            if start { _ = s.warehouses[id]!.ensureStarted(now: now) } else { s.warehouses[id]!.stop(now: now) }
        }
        return APIResponse(status: 200, json: Array("{}".utf8))
    }

    // MARK: OAuth

    func discovery(_ host: String) -> APIResponse {
        let base = "http://\(host)"
        var w = JSONWriter()
        w.beginObject()
        w.key("authorization_endpoint"); w.string("\(base)/oidc/v1/authorize")
        w.key("token_endpoint"); w.string("\(base)/oidc/v1/token")
        w.key("issuer"); w.string("\(base)/oidc")
        w.key("jwks_uri"); w.string("\(base)/oidc/jwks.json")
        func list(_ k: String, _ v: [String]) {
            w.key(k)
            w.beginArray()
            for x in v { w.string(x) }
            w.endArray()
        }
        list("scopes_supported", Self.oauthScopes.sorted())
        list("response_types_supported", ["code", "id_token"])
        list("response_modes_supported", ["query", "fragment", "form_post"])
        list("grant_types_supported", ["client_credentials", "authorization_code", "refresh_token"])
        list("code_challenge_methods_supported", ["S256"])
        list("token_endpoint_auth_methods_supported", ["client_secret_basic", "client_secret_post", "none"])
        list("subject_types_supported", ["public"])
        list("id_token_signing_alg_values_supported", ["RS256"])
        list("claims_supported", ["iss", "sub", "aud", "iat", "exp", "jti", "name", "family_name", "given_name", "preferred_username"])
        w.key("request_uri_parameter_supported"); w.bool(false)
        w.endObject()
        return APIResponse(status: 200, json: w.bytes, contentType: "application/json; charset=UTF-8")
    }

    static let oauthScopes: Set<String> = ["all-apis", "email", "offline_access", "openid", "profile", "sql"]

    func databricksConfig(_ host: String) -> APIResponse {
        var w = JSONWriter()
        w.beginObject()
        w.key("workspace_id"); w.string("1234567890123456")
        w.key("oidc_endpoint"); w.string("http://\(host)/oidc")
        w.key("cloud"); w.string("aws")
        w.endObject()
        return APIResponse(status: 200, json: w.bytes)
    }

    func oauthError(_ status: Int, _ error: String, _ description: String) -> APIResponse {
        var w = JSONWriter()
        w.beginObject()
        w.key("error"); w.string(error)
        w.key("error_description"); w.string(description)
        w.endObject()
        return APIResponse(status: status, json: w.bytes)
    }

    func token(_ req: APIRequest) -> APIResponse {
        var form: [String: String] = [:]
        for pair in String(decoding: req.body, as: UTF8.self).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let dec = { (s: Substring) in String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            form[dec(kv[0])] = kv.count > 1 ? dec(kv[1]) : ""
        }
        var clientID = form["client_id"]
        var secret = form["client_secret"]
        if let auth = req.header("authorization"), auth.lowercased().hasPrefix("basic ") {
            let b64 = auth.dropFirst(6).trimmingCharacters(in: .whitespaces)
            guard let data = Data(base64Encoded: b64), let text = String(data: data, encoding: .utf8),
                let colon = text.firstIndex(of: ":")
            else { return oauthError(401, "invalid_client", "Client authentication failed") }
            clientID = String(text[..<colon]).removingPercentEncoding ?? String(text[..<colon])
            let s = String(text[text.index(after: colon)...])
            secret = s.removingPercentEncoding ?? s
        }
        guard form["grant_type"] == "client_credentials" else {
            return oauthError(400, "unsupported_grant_type", "grant_type must be client_credentials")
        }
        guard let cid = clientID, let sec = secret else {
            return oauthError(401, "invalid_client", "Client authentication failed")
        }
        let scope = form["scope"].flatMap { $0.isEmpty ? nil : $0 } ?? "all-apis"
        for sc in scope.split(separator: " ") where !Self.oauthScopes.contains(String(sc)) && !sc.hasPrefix("sql.") {
            return oauthError(400, "invalid_scope", "The requested scope is invalid, unknown, or malformed: \(sc)")
        }
        let now = clock.now
        var rng = SystemRandomNumberGenerator()
        let tokenText =
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + (0..<4).map { _ in String(rng.next() as UInt64, radix: 36) }.joined()
            + ".c2ltdWxhdG9y"
        let ok: Bool = state.withLock { s in
            guard let i = s.principals.firstIndex(where: { $0.oauth?.clientID == cid && $0.oauth?.clientSecret == sec }) else {
                return false
            }
            // Drop expired tokens now and then.
            if s.oauthTokens.count > 10_000 { s.oauthTokens = s.oauthTokens.filter { $0.value.expires > now } }
            s.oauthTokens[tokenText] = (i, now + configuration.oauthTokenTTL)
            return true
        }
        guard ok else { return oauthError(401, "invalid_client", "Client authentication failed") }
        var w = JSONWriter()
        w.beginObject()
        w.key("access_token"); w.string(tokenText)
        w.key("token_type"); w.string("Bearer")
        w.key("expires_in"); w.int(Int64(configuration.oauthTokenTTL))
        w.key("scope"); w.string(scope)
        w.endObject()
        return APIResponse(status: 200, json: w.bytes)
    }

    // MARK: blob storage for EXTERNAL_LINKS

    func s3Error(_ status: Int, _ code: String, _ message: String) -> APIResponse {
        let xml =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code><Message>\(message)</Message><RequestId>\(UInt64.random(in: 0...UInt64.max))</RequestId></Error>"
        return APIResponse(status: status, json: Array(xml.utf8), contentType: "application/xml")
    }

    func expiredBlob() -> APIResponse { s3Error(403, "AccessDenied", "Request has expired") }

    func blob(_ req: APIRequest) -> APIResponse {
        guard req.method == "GET" else { return s3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.") }
        if req.header("authorization") != nil {
            return s3Error(
                400, "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
        }
        guard let exp = req.query["X-Sim-Expires"].flatMap({ Int64($0) }), let sig = req.query["X-Sim-Signature"],
            sig == signature(path: req.path, expires: exp)
        else {
            return s3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
        }
        if Double(exp) < clock.now { return expiredBlob() }
        let segs = req.path.split(separator: "/").map(String.init)
        guard segs.count == 3, let chunk = Int(segs[2]) else { return s3Error(404, "NoSuchKey", "The specified key does not exist.") }
        let rec: StatementRecord? = state.withLock { $0.statements[segs[1]] }
        guard let r = rec, r.state(at: clock.now, resultTTL: configuration.resultTTL) == "SUCCEEDED", chunk < r.chunkCount else {
            return s3Error(404, "NoSuchKey", "The specified key does not exist.")
        }
        return APIResponse(
            status: 200, body: blob(r, chunk: chunk), contentType: r.format == "CSV" ? "text/csv" : "application/octet-stream")
    }
}
