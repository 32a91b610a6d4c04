import CDFSyncCore
import Foundation

/// Request routing, authentication and fault injection.
extension Simulator {
    func handle(_ req: HTTPRequest) -> HTTPResponse {
        let started = DispatchTime.now().uptimeNanoseconds
        let resp = route(req)
        if let log = configuration.requestLog {
            let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
            let bytes = resp.arrayBody?.count ?? resp.body.count
            log("\(req.method) \(req.path) \(resp.status) \(bytes)B \(String(format: "%.1f", ms))ms")
        }
        if !resp.headers.contains(where: { $0.0 == "x-request-id" }) {
            resp.headers.insert(("x-request-id", UUID().uuidString.lowercased()), at: 0)
        }
        resp.headers.append(("server", "databricks"))
        return resp
    }

    private func route(_ req: HTTPRequest) -> HTTPResponse {
        let host = req.header("host") ?? state.withLock { $0.boundAddress }
        if req.path.hasPrefix("/_sim/") || req.path == "/_sim" { return admin(req) }

        // Faults (never on the admin interface).
        var delivery: Delivery = .normal
        var corruption: String?
        if let f = takeFault(req) {
            switch f.kind {
            case "status":
                let status = f.status ?? 503
                let code =
                    f.errorCode
                    ?? (status == 429
                        ? "REQUEST_LIMIT_EXCEEDED"
                        : status == 503 ? "TEMPORARILY_UNAVAILABLE" : status == 500 ? "INTERNAL_ERROR" : "BAD_REQUEST")
                var e = APIError(status, code, f.message ?? "Injected fault: HTTP \(status).")
                e.retryAfter = f.retryAfter
                return e.response()
            case "drop":
                let r = HTTPResponse(status: 500)
                r.delivery = .drop
                return r
            case "reset_mid_body": delivery = .resetMidBody
            case "slow": delivery = .slow(f.delayMillis ?? 1000)
            case "expire_links":
                if req.path.hasPrefix("/_blob/") { return expiredBlob() }
            case "revoke_token":
                if let tok = bearerToken(req) { state.withLock { _ = $0.revokedTokens.insert(tok) } }
            case "corrupt_body": corruption = f.message ?? "truncate"
            case "proxy_status": return Self.proxyPage(f.status ?? 502, title: f.message)
            default: break
            }
        }
        let resp = req.path.hasPrefix("/_hook/") ? webhook(req) : routeAPI(req, host: host)
        if case .normal = delivery {} else { resp.delivery = delivery }
        if let corruption, resp.status == 200 { Self.corrupt(resp, how: corruption) }
        if resp.status == 200 { tamperIfAsked(req, resp) }
        return resp
    }

    /// What a reverse proxy in front of the workspace answers when it cannot (fault kind `proxy_status`): an HTML page,
    /// not a Databricks error body, titled like nginx's ("502 Bad Gateway") unless `title` is given.
    static func proxyPage(_ status: Int, title: String?) -> HTTPResponse {
        let heading = "\(status) \(HTTPResponse.reason(status))"
        let html = "<html>\r\n<head><title>\(title ?? heading)</title></head>\r\n<body>\r\n"
            + "<center><h1>\(heading)</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        return HTTPResponse(status: status, json: Array(html.utf8), contentType: "text/html")
    }

    /// Damages a result body the way a broken server or proxy might (fault kind `corrupt_body`, the way named by
    /// `message`): `truncate` cuts it in the middle of the rows, `wrong_arity` adds a value to the first row,
    /// `non_string` puts a JSON number in the first row. Bodies without rows are left alone.
    static func corrupt(_ resp: HTTPResponse, how: String) {
        var bytes = resp.arrayBody ?? Array(resp.body.bytes)
        let marker = Array("[[".utf8)
        guard let at = bytes.indices.dropLast().first(where: { bytes[$0] == marker[0] && bytes[$0 + 1] == marker[1] })
        else { return }
        switch how {
        case "wrong_arity": bytes.insert(contentsOf: Array("\"extra\",".utf8), at: at + 2)
        case "non_string": bytes.insert(contentsOf: Array("42,".utf8), at: at + 2)
        default: bytes.removeSubrange((at + (bytes.count - at) / 2)...)
        }
        resp.arrayBody = bytes
    }

    private func takeFault(_ req: HTTPRequest) -> Fault? {
        state.withLock { s in
            for (i, f) in s.faults.enumerated() where f.matches(req) {
                // expire_links only applies to blob downloads.
                if f.kind == "expire_links" && !req.path.hasPrefix("/_blob/") { continue }
                if let c = f.count {
                    if c <= 1 { s.faults.remove(at: i) } else { s.faults[i].count = c - 1 }
                }
                return f
            }
            return nil
        }
    }

    func bearerToken(_ req: HTTPRequest) -> String? {
        guard let auth = req.header("authorization") else { return nil }
        let parts = auth.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    /// The principal index for a workspace API call, or the 401/403 response.
    private func authenticate(_ req: HTTPRequest) -> Result<Int, APIError> {
        guard let token = bearerToken(req), !token.isEmpty else {
            var e = APIError(401, "", "Credential was not sent or was of an unsupported type for this API.")
            e.numericCode = true
            return .failure(e)
        }
        let now = clock.now
        let idx: Int? = state.withLock { s in
            if s.revokedTokens.contains(token) { return nil }
            if let i = s.patIndex[token] { return i }
            if let o = s.oauthTokens[token], o.expires > now { return o.principal }
            return nil
        }
        guard let i = idx else {
            var e = APIError(403, "", "Invalid access token.")
            e.numericCode = true
            return .failure(e)
        }
        return .success(i)
    }

    private func routeAPI(_ req: HTTPRequest, host: String) -> HTTPResponse {
        if req.path.hasPrefix("/_blob/") { return blob(req) }
        if req.path == "/oidc/.well-known/oauth-authorization-server" && req.method == "GET" { return discovery(host) }
        if req.path == "/.well-known/databricks-config" && req.method == "GET" { return databricksConfig(host) }
        if req.path == "/oidc/v1/token" {
            guard req.method == "POST" else { return notFound(req) }
            return token(req)
        }
        let segs = req.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard segs.count >= 3, segs[0] == "api", segs[1] == "2.0", segs[2] == "sql" else { return notFound(req) }
        let principal: Int
        switch authenticate(req) {
        case .success(let p): principal = p
        case .failure(let e):
            let r = e.response()
            if e.status == 401 { r.setHeader("www-authenticate", "Bearer realm=\"DatabricksRealm\"") }
            return r
        }
        let rest = Array(segs.dropFirst(3))
        switch (req.method, rest.count, rest.first) {
        case ("POST", 1, "statements"): return executeStatement(req, principal: principal, host: host)
        case ("GET", 2, "statements"): return getStatement(rest[1], principal: principal, host: host)
        case ("DELETE", 2, "statements"): return closeStatement(rest[1], principal: principal)
        case ("POST", 3, "statements") where rest[2] == "cancel": return cancelStatement(rest[1], principal: principal)
        case ("GET", 5, "statements") where rest[2] == "result" && rest[3] == "chunks":
            return getChunk(rest[1], index: rest[4], principal: principal, query: req.query, host: host)
        case ("POST", 1, "sessions"): return createSession(req, principal: principal)
        case ("DELETE", 2, "sessions"): return deleteSession(rest[1], principal: principal)
        case ("GET", 1, "warehouses"): return listWarehouses(principal: principal, host: host)
        case ("GET", 2, "warehouses"): return getWarehouse(rest[1], principal: principal, host: host)
        case ("POST", 3, "warehouses") where rest[2] == "start" || rest[2] == "stop":
            return startStopWarehouse(rest[1], start: rest[2] == "start", principal: principal)
        default: return notFound(req)
        }
    }

    func notFound(_ req: HTTPRequest) -> HTTPResponse {
        APIError(404, "ENDPOINT_NOT_FOUND", "No API found for '\(req.method) \(req.path)'").response()
    }

    // MARK: sessions (used by the JDBC driver; optional for SEA clients)

    private func createSession(_ req: HTTPRequest, principal: Int) -> HTTPResponse {
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
        return HTTPResponse(status: 200, json: w.bytes)
    }

    private func deleteSession(_ id: String, principal: Int) -> HTTPResponse {
        let found = state.withLock { s -> Bool in
            guard let x = s.sessions[id], x.principal == principal else { return false }
            s.sessions[id] = nil
            return true
        }
        guard found else { return APIError(404, "NOT_FOUND", "Session \(id) not found.").response() }
        return HTTPResponse(status: 200, json: Array("{}".utf8))
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

    private func listWarehouses(principal: Int, host: String) -> HTTPResponse {
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
        return HTTPResponse(status: 200, json: w.bytes)
    }

    private func warehouseAccess(_ id: String, principal: Int, need: Set<String>) -> APIError? {
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

    private func getWarehouse(_ id: String, principal: Int, host: String) -> HTTPResponse {
        if let e = warehouseAccess(id, principal: principal, need: ["CAN_USE", "CAN_MANAGE", "IS_OWNER", "CAN_MONITOR", "CAN_VIEW"]) {
            return e.response()
        }
        let now = clock.now
        var w = JSONWriter()
        state.withLock { s in
            s.warehouses[id]!.settle(now: now)
            warehouseJSON(s.warehouses[id]!, host: host, into: &w)
        }
        return HTTPResponse(status: 200, json: w.bytes)
    }

    private func startStopWarehouse(_ id: String, start: Bool, principal: Int) -> HTTPResponse {
        let need: Set<String> = start ? ["CAN_USE", "CAN_MANAGE", "IS_OWNER"] : ["CAN_MANAGE", "IS_OWNER"]
        if let e = warehouseAccess(id, principal: principal, need: need) { return e.response() }
        let now = clock.now
        state.withLock { s in
            if start { _ = s.warehouses[id]!.ensureStarted(now: now) } else { s.warehouses[id]!.stop(now: now) }
        }
        return HTTPResponse(status: 200, json: Array("{}".utf8))
    }

    // MARK: OAuth

    private func discovery(_ host: String) -> HTTPResponse {
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
        return HTTPResponse(status: 200, json: w.bytes, contentType: "application/json; charset=UTF-8")
    }

    static let oauthScopes: Set<String> = ["all-apis", "email", "offline_access", "openid", "profile", "sql"]

    private func databricksConfig(_ host: String) -> HTTPResponse {
        var w = JSONWriter()
        w.beginObject()
        w.key("workspace_id"); w.string("1234567890123456")
        w.key("oidc_endpoint"); w.string("http://\(host)/oidc")
        w.key("cloud"); w.string("aws")
        w.endObject()
        return HTTPResponse(status: 200, json: w.bytes)
    }

    private func oauthError(_ status: Int, _ error: String, _ description: String) -> HTTPResponse {
        var w = JSONWriter()
        w.beginObject()
        w.key("error"); w.string(error)
        w.key("error_description"); w.string(description)
        w.endObject()
        return HTTPResponse(status: status, json: w.bytes)
    }

    private func token(_ req: HTTPRequest) -> HTTPResponse {
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
        return HTTPResponse(status: 200, json: w.bytes)
    }

    // MARK: blob storage for EXTERNAL_LINKS

    private func s3Error(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
        let xml =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code><Message>\(message)</Message><RequestId>\(UInt64.random(in: 0...UInt64.max))</RequestId></Error>"
        return HTTPResponse(status: status, json: Array(xml.utf8), contentType: "application/xml")
    }

    private func expiredBlob() -> HTTPResponse { s3Error(403, "AccessDenied", "Request has expired") }

    private func blob(_ req: HTTPRequest) -> HTTPResponse {
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
        let resp = HTTPResponse(status: 200, contentType: r.format == "CSV" ? "text/csv" : "application/octet-stream")
        resp.body = blob(r, chunk: chunk)
        return resp
    }
}
