import Foundation
import Synchronization

/// Supplies the `Authorization` header for workspace API calls.
public protocol TokenProvider: Sendable {
    /// A valid bearer token, fetching or refreshing it when needed; a fetch that meets a transient failure (429,
    /// 5xx, a network error) is retried under `retryPolicy`, like any other request.
    func bearerToken(using transport: CurlTransport, retryPolicy: RetryPolicy) throws -> Secret
    /// Forgets a token the server rejected, so the next call fetches a new one. Returns whether a refresh is possible.
    func invalidate() -> Bool
}

extension TokenProvider {
    /// A valid bearer token, fetched under the default retry policy when needed.
    public func bearerToken(using transport: CurlTransport) throws -> Secret {
        try bearerToken(using: transport, retryPolicy: RetryPolicy())
    }
}

/// A personal access token: nothing to refresh.
public struct StaticTokenProvider: TokenProvider {
    let token: Secret
    public init(token: Secret) { self.token = token }
    public func bearerToken(using transport: CurlTransport, retryPolicy: RetryPolicy) throws -> Secret { token }
    public func invalidate() -> Bool { false }
}

/// OAuth M2M (`client_credentials` at `/oidc/v1/token`, HTTP Basic client auth), cached and refreshed before
/// it expires: a token is stale once less than `min(TTL/2, 20 min)` remains (the SDK's rule).
public final class OAuthM2MTokenProvider: TokenProvider {
    private struct Cached { var token: Secret; var expiresAt: Date; var staleAt: Date }
    private let baseURL: String
    private let clientID: String
    private let clientSecret: Secret
    private let scope: String
    private let state = Mutex<Cached?>(nil)
    private let now: @Sendable () -> Date

    public init(baseURL: String, clientID: String, clientSecret: Secret, scope: String = "all-apis",
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.baseURL = baseURL
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scope = scope
        self.now = now
    }

    public func bearerToken(using transport: CurlTransport, retryPolicy: RetryPolicy) throws -> Secret {
        if let cached = state.withLock({ $0 }), now() < cached.staleAt { return cached.token }
        let fresh = try fetch(using: transport, retryPolicy: retryPolicy)
        state.withLock { $0 = fresh }
        return fresh.token
    }

    public func invalidate() -> Bool {
        state.withLock { $0 = nil }
        return true
    }

    private struct TokenResponse: Decodable {
        var access_token: String
        var token_type: String?
        var expires_in: Double?
    }

    private struct OAuthErrorBody: Decodable {
        var error: String?
        var error_description: String?
    }

    /// OAuth errors that say the client id or secret is wrong (RFC 6749 §5.2), answered with 400 or 401.
    static let credentialErrors: Set<String> = [
        "invalid_client", "unauthorized_client", "invalid_grant", "access_denied",
    ]

    /// Requests a token; a 429, a 5xx or a network failure is transient (the token endpoint is busy or down, which
    /// says nothing about the credentials) and retried under `retryPolicy`, `Retry-After` honoured. Only an OAuth
    /// credential error blames the client id and secret.
    private func fetch(using transport: CurlTransport, retryPolicy: RetryPolicy) throws -> Cached {
        let basic = Data("\(formEncode(clientID)):\(formEncode(clientSecret.reveal()))".utf8).base64EncodedString()
        let body = "grant_type=client_credentials&scope=\(formEncode(scope))"
        let request = HTTPRequest(
            method: .post, url: baseURL + "/oidc/v1/token",
            headers: [("Authorization", "Basic \(basic)"), ("Content-Type", "application/x-www-form-urlencoded"),
                      ("Accept", "application/json")],
            body: Array(body.utf8))
        let host = URLComponents(string: baseURL)?.host ?? baseURL
        let context = "OAuth token request for client \(clientID) to \(host)"
        let started = Date()
        var attempt = 0
        while true {
            attempt += 1
            let answer: (head: HTTPResponseHead, body: [UInt8])
            do {
                answer = try transport.performCollecting(request, limit: 1 << 20)
            } catch let error as TransportError {
                let failure = ErrorClassification.transport(error, context: context)
                guard error.kind != .tls && error.kind != .couldNotResolveHost else { throw failure }
                try wait(after: failure, attempt: attempt, started: started, retryPolicy: retryPolicy)
                continue
            }
            if answer.head.status == 200 { return try token(from: answer.body, host: host) }
            let failure = classify(head: answer.head, body: answer.body, host: host, context: context)
            guard answer.head.status == 429 || answer.head.status >= 500 else { throw failure }
            try wait(after: failure, attempt: attempt, started: started, retryPolicy: retryPolicy)
        }
    }

    /// Sleeps before the next attempt, or throws `failure` when the attempts or the time budget are spent.
    private func wait(after failure: DatabricksError, attempt: Int, started: Date, retryPolicy: RetryPolicy) throws {
        let elapsed = Date().timeIntervalSince(started)
        guard attempt < retryPolicy.maxAttempts, elapsed < retryPolicy.budget else {
            throw attempt > 1 ? failure.afterAttempts(attempt, seconds: elapsed) : failure
        }
        Thread.sleep(forTimeInterval: retryPolicy.delay(attempt: attempt, retryAfter: failure.retryAfter))
    }

    private func token(from bytes: [UInt8], host: String) throws -> Cached {
        guard let token = try? JSONDecoder().decode(TokenResponse.self, from: Data(bytes)), !token.access_token.isEmpty else {
            throw DatabricksError(.invalidResponse, "OAuth token response from \(host) has no access_token",
                remedy: "The token endpoint answered unexpectedly; check the host is a Databricks workspace.")
        }
        // Bounded: a TTL from the wire must neither trap nor overflow a Date.
        let given = token.expires_in ?? 3600
        let ttl = given.isFinite ? min(max(given, 0), 86_400 * 366) : 3600
        let issued = now()
        return Cached(
            token: Secret(token.access_token), expiresAt: issued.addingTimeInterval(ttl),
            staleAt: issued.addingTimeInterval(ttl - min(ttl / 2, 20 * 60)))
    }

    private func classify(head: HTTPResponseHead, body: [UInt8], host: String, context: String) -> DatabricksError {
        let status = head.status
        let parsed = try? JSONDecoder().decode(OAuthErrorBody.self, from: Data(body))
        let code = parsed?.error ?? ""
        let said = DatabricksError.oneLine(
            [parsed?.error, parsed?.error_description].compactMap { $0 }.joined(separator: ": "))
        let what = said.isEmpty
            ? ErrorClassification.answer(status: status, reason: head.reason, body: body).message
            : "HTTP \(status) \(ErrorClassification.clip(said, 200))"
        let retryAfter = head[header: "retry-after"].flatMap(Double.init)
        switch status {
        case 429, 500...:
            return DatabricksError(status == 429 ? .rateLimited : .serverError, "\(context) failed: \(what)",
                remedy: "The workspace's token endpoint is busy or unavailable; the credentials were not judged. Run "
                    + "again later, and check the workspace status page if it persists.",
                httpStatus: status, retryAfter: retryAfter)
        case 400 where Self.credentialErrors.contains(code),
            401 where Self.credentialErrors.contains(code) || code.isEmpty:
            return DatabricksError(.authenticationFailed, "\(context) failed: \(what)",
                remedy: "Check the service principal's client id and secret (DATABRICKS_CLIENT_ID / "
                    + "DATABRICKS_CLIENT_SECRET) and that it belongs to \(host).",
                httpStatus: status)
        case 400 where code == "invalid_scope":
            return DatabricksError(.configuration, "\(context) failed: \(what)",
                remedy: "Use the scope all-apis (the default) or sql.", httpStatus: status)
        default:
            return DatabricksError(.authenticationFailed, "\(context) failed: \(what)",
                remedy: "The token endpoint refused the request for a reason other than the credentials: check that "
                    + "the host is the workspace URL (Azure Entra ID service principals use another endpoint) and "
                    + "that no proxy in between answers for it.",
                httpStatus: status)
        }
    }

    private func formEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}
