import CDFSyncCore
import Foundation
import Synchronization
import HTTPTypes
import Hummingbird
import NIOCore

/// An injected fault (admin `POST /_sim/faults`, or `Simulator.addFault`).
public struct Fault: Sendable, Codable {
    /// What a fault does. Request faults act on the HTTP requests they match (``FaultMiddleware``; never on the
    /// admin interface); `sql_error` and `queue` act on the statements whose SQL they match, `tamper` on responses.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Answer with `status` (default 503) and a Databricks error body (`error_code`, `message`, `retry_after`).
        case status
        /// Answer with `status` (default 502) and the HTML page a reverse proxy sends (`message`: its title).
        case proxyStatus = "proxy_status"
        /// Send the head and half the body, then reset the connection.
        case resetMidBody = "reset_mid_body"
        /// Hold the response back `delay_ms` milliseconds (default 1000).
        case slow
        /// Close the connection without answering.
        case drop
        /// Answer a blob download (an external link) with S3's "Request has expired"; API calls pass.
        case expireLinks = "expire_links"
        /// Revoke the request's bearer token, then answer (403 from then on).
        case revokeToken = "revoke_token"
        /// Damage a 200 result body the way `message` says: `truncate` (default), `wrong_arity`, `non_string`.
        case corruptBody = "corrupt_body"
        /// Edit a 200 response body (see ``Tamper``).
        case tamper
        /// The statement FAILS with `error_class`, `sql_state`, `message`.
        case sqlError = "sql_error"
        /// The statement's responses say PENDING `polls` times (default 2), then RUNNING once.
        case queue

        /// Whether it acts on a request as a whole (in ``FaultMiddleware``, before the API answers).
        var actsOnRequests: Bool { self != .sqlError && self != .queue && self != .tamper }
    }

    public struct Match: Sendable, Codable {
        public var method: String?
        public var pathPrefix: String?
        /// `sql_error`, `queue` and `tamper` faults: statements whose SQL text contains this (case-insensitive).
        public var statementContains: String?
        enum CodingKeys: String, CodingKey {
            case method
            case pathPrefix = "path_prefix"
            case statementContains = "statement_contains"
        }
        public init(method: String? = nil, pathPrefix: String? = nil, statementContains: String? = nil) {
            self.method = method
            self.pathPrefix = pathPrefix
            self.statementContains = statementContains
        }
    }

    public var id: Int = 0
    public var match: Match
    /// How many matching requests it affects (nil = until cleared).
    public var count: Int?
    public var kind: Kind
    public var status: Int?
    public var retryAfter: Int?
    public var delayMillis: Int?
    public var errorCode: String?
    public var message: String?
    /// `sql_error`: the statement FAILS with `[<error_class>] <message> SQLSTATE: <sql_state>`, as a warehouse
    /// error the simulator does not model otherwise would.
    public var errorClass: String?
    public var sqlState: String?
    /// `queue`: how many statement responses (the submit's included) say PENDING before one says RUNNING.
    public var polls: Int?
    /// `tamper`: the edits made to a matching response (see ``Tamper``).
    public var tamper: [Tamper]?

    enum CodingKeys: String, CodingKey {
        case id, match, count, kind, status, message, polls, tamper
        case retryAfter = "retry_after"
        case delayMillis = "delay_ms"
        case errorCode = "error_code"
        case errorClass = "error_class"
        case sqlState = "sql_state"
    }

    public init(
        match: Match = Match(), count: Int? = 1, kind: Kind, status: Int? = nil, retryAfter: Int? = nil,
        delayMillis: Int? = nil, message: String? = nil, polls: Int? = nil
    ) {
        self.message = message
        self.polls = polls
        self.match = match
        self.count = count
        self.kind = kind
        self.status = status
        self.retryAfter = retryAfter
        self.delayMillis = delayMillis
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        match = try c.decodeIfPresent(Match.self, forKey: .match) ?? Match()
        count = try c.decodeIfPresent(Int.self, forKey: .count)
        let kindText = try c.decode(String.self, forKey: .kind)
        guard let kind = Kind(rawValue: kindText) else {
            throw SimulatorError(
                "unknown fault kind \(kindText); one of \(Kind.allCases.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        self.kind = kind
        status = try c.decodeIfPresent(Int.self, forKey: .status)
        retryAfter = try c.decodeIfPresent(Int.self, forKey: .retryAfter)
        delayMillis = try c.decodeIfPresent(Int.self, forKey: .delayMillis)
        errorCode = try c.decodeIfPresent(String.self, forKey: .errorCode)
        message = try c.decodeIfPresent(String.self, forKey: .message)
        errorClass = try c.decodeIfPresent(String.self, forKey: .errorClass)
        sqlState = try c.decodeIfPresent(String.self, forKey: .sqlState)
        polls = try c.decodeIfPresent(Int.self, forKey: .polls)
        tamper = try c.decodeIfPresent([Tamper].self, forKey: .tamper)
    }

    /// Whether a request fault applies to `req`.
    func matches(_ req: APIRequest) -> Bool {
        guard kind.actsOnRequests else { return false }
        if let m = match.method, m.uppercased() != req.method { return false }
        if let p = match.pathPrefix, !req.path.hasPrefix(p) { return false }
        return true
    }

    /// Whether a `queue` fault applies to a statement with this SQL text.
    func matches(queued sql: String) -> Bool {
        guard kind == .queue else { return false }
        guard let needle = match.statementContains else { return true }
        return sql.range(of: needle, options: .caseInsensitive) != nil
    }

    /// Whether a `tamper` fault applies to a response to `req` that carries a statement with this SQL text (nil: no
    /// statement).
    func matches(tampering req: APIRequest, statementSQL sql: String?) -> Bool {
        guard kind == .tamper else { return false }
        if let m = match.method, m.uppercased() != req.method { return false }
        if let p = match.pathPrefix, !req.path.hasPrefix(p) { return false }
        guard let needle = match.statementContains else { return true }
        return sql?.range(of: needle, options: .caseInsensitive) != nil
    }

    /// Whether a `sql_error` fault applies to a statement with this SQL text.
    func matches(statement sql: String) -> Bool {
        guard kind == .sqlError else { return false }
        guard let needle = match.statementContains else { return true }
        return sql.range(of: needle, options: .caseInsensitive) != nil
    }
}

/// Fault injection for the workspace API and the webhook receiver (never the admin interface): the first request
/// fault matching a request answers in the API's place, has the API answer first and then damages the answer, or
/// asks ``TransportFaultHandler`` to misdeliver it. Then a matching `tamper` fault edits a 200 body.
struct FaultMiddleware: RouterMiddleware {
    typealias Context = SimulatorContext
    let simulator: Simulator

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let req = context.request
        if req.isAdmin { return try await next(request, context) }
        var transport: TransportFault?
        var corruption: String?
        if let f = simulator.takeFault(req) {
            switch f.kind {
            case .status: return simulator.statusFault(f).hummingbird
            case .proxyStatus: return Simulator.proxyPage(f.status ?? 502, title: f.message).hummingbird
            case .drop:
                var r = Response(status: .internalServerError)
                r.headers[TransportFault.headerName] = TransportFault.drop.headerValue
                return r
            case .resetMidBody: transport = .resetMidBody
            case .slow: transport = .slow(milliseconds: f.delayMillis ?? 1000)
            case .expireLinks:
                if req.path.hasPrefix("/_blob/") { return simulator.expiredBlob().hummingbird }
            case .revokeToken:
                if let tok = simulator.bearerToken(req) { simulator.state.withLock { _ = $0.revokedTokens.insert(tok) } }
            case .corruptBody: corruption = f.message ?? "truncate"
            case .tamper, .sqlError, .queue: break
            }
        }
        var response = try await next(request, context)
        if response.status.code == 200, corruption != nil || simulator.hasTamperFaults {
            var bytes = try await Self.collect(response.body)
            if let corruption { bytes = Simulator.corrupt(bytes, how: corruption) }
            if let edited = simulator.tampered(req, bytes) { bytes = edited }
            var headers = response.headers
            headers[.contentLength] = nil
            response = Response(status: response.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        if let transport { response.headers[TransportFault.headerName] = transport.headerValue }
        return response
    }

    /// The bytes of a response body.
    static func collect(_ body: ResponseBody) async throws -> [UInt8] {
        let sink = BodySink()
        try await body.write(BodyCollector(sink: sink))
        return sink.bytes
    }

    private final class BodySink: @unchecked Sendable {
        // @unchecked: written by one response body, then read by the same task.
        var bytes: [UInt8] = []
    }

    private struct BodyCollector: ResponseBodyWriter {
        let sink: BodySink
        mutating func write(_ buffer: ByteBuffer) async throws { sink.bytes += buffer.readableBytesView }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

extension TransportFault {
    static let headerName = HTTPField.Name(TransportFault.header)!
}

extension Simulator {
    /// Takes the first request fault matching `req` (counting it down).
    func takeFault(_ req: APIRequest) -> Fault? {
        // expire_links only applies to blob downloads.
        takeFirstFault { f in f.matches(req) && (f.kind != .expireLinks || req.path.hasPrefix("/_blob/")) }
    }

    /// Takes the first `queue` fault matching `sql` (counting it down): how many statement responses say PENDING.
    func takeQueueFault(_ sql: String) -> Int? {
        takeFirstFault { $0.matches(queued: sql) }.map { max(1, $0.polls ?? 2) }
    }

    /// Takes the first `sql_error` fault matching `sql` (counting it down), as the error the statement fails with.
    func takeStatementFault(_ sql: String) -> SQLError? {
        takeFirstFault { $0.matches(statement: sql) }.map { f in
            var e = SQLError(f.errorClass ?? "INTERNAL_ERROR", f.sqlState ?? "XX000", f.message ?? "Injected failure.")
            if let code = f.errorCode { e.errorCode = code }
            return e
        }
    }

    /// Takes the first fault `matches` accepts: a fault with a `count` is counted down, and removed after its last
    /// use.
    private func takeFirstFault(_ matches: (Fault) -> Bool) -> Fault? {
        state.withLock { s in
            guard let i = s.faults.firstIndex(where: matches) else { return nil }
            let f = s.faults[i]
            if let c = f.count {
                if c <= 1 { s.faults.remove(at: i) } else { s.faults[i].count = c - 1 }
            }
            return f
        }
    }

    /// What a `status` fault answers: a Databricks error body.
    func statusFault(_ f: Fault) -> APIResponse {
        let status = f.status ?? 503
        let code =
            f.errorCode
            ?? (status == 429
                ? "REQUEST_LIMIT_EXCEEDED"
                : status == 503 ? "TEMPORARILY_UNAVAILABLE" : status == 500 ? "INTERNAL_ERROR" : "BAD_REQUEST")
        var e = APIError(status, code, f.message ?? "Injected fault: HTTP \(status).")
        e.retryAfter = f.retryAfter
        return e.response()
    }

    /// What a reverse proxy in front of the workspace answers when it cannot (fault kind `proxy_status`): an HTML page,
    /// not a Databricks error body, titled like nginx's ("502 Bad Gateway") unless `title` is given.
    static func proxyPage(_ status: Int, title: String?) -> APIResponse {
        let heading = "\(status) \(APIResponse.reason(status))"
        let html = "<html>\r\n<head><title>\(title ?? heading)</title></head>\r\n<body>\r\n"
            + "<center><h1>\(heading)</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        return APIResponse(status: status, json: Array(html.utf8), contentType: "text/html")
    }

    /// Damages a result body the way a broken server or proxy might (fault kind `corrupt_body`, the way named by
    /// `how`): `truncate` cuts it in the middle of the rows, `wrong_arity` adds a value to the first row,
    /// `non_string` puts a JSON number in the first row. Bodies without rows are left alone.
    static func corrupt(_ body: [UInt8], how: String) -> [UInt8] {
        var bytes = body
        let marker = Array("[[".utf8)
        guard let at = bytes.indices.dropLast().first(where: { bytes[$0] == marker[0] && bytes[$0 + 1] == marker[1] })
        else { return body }
        switch how {
        case "wrong_arity": bytes.insert(contentsOf: Array("\"extra\",".utf8), at: at + 2)
        case "non_string": bytes.insert(contentsOf: Array("42,".utf8), at: at + 2)
        default: bytes.removeSubrange((at + (bytes.count - at) / 2)...)
        }
        return bytes
    }
}
