import CDFSyncCore
import Foundation
import Logging

/// Authenticated requests to one workspace with retries and error classification. One per thread: it owns a
/// `CurlTransport` (a libcurl easy handle) and reuses its connection.
final class WorkspaceAPI {
    let settings: ConnectionSettings
    let tokens: any TokenProvider
    let transport: CurlTransport
    var retryPolicy = RetryPolicy()
    /// Retries (warning); every request with its status, size and time (trace) — never a header or a query string.
    var logger = Logger(label: "cdfsync.client")

    init(settings: ConnectionSettings, tokens: any TokenProvider) {
        self.settings = settings
        self.tokens = tokens
        self.transport = CurlTransport(options: settings.transport)
    }

    static func defaultTokens(for settings: ConnectionSettings) -> any TokenProvider {
        switch settings.authentication {
        case .personalAccessToken(let t): StaticTokenProvider(token: t)
        case .oauthM2M(let id, let secret, let scope):
            OAuthM2MTokenProvider(baseURL: settings.baseURL, clientID: id, clientSecret: secret, scope: scope)
        }
    }

    /// Sends with auth, retries and error classification; 2xx bodies go to `consume` as they arrive.
    func send(
        _ method: HTTPRequest.Method, path: String, body: [UInt8]?, rule: RetryRule, context: String,
        restart: () throws -> Void, consume: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> HTTPResponseHead {
        let started = Date()
        var attempt = 0
        var refreshedToken = false
        while true {
            attempt += 1
            let token = try tokens.bearerToken(using: transport, retryPolicy: retryPolicy)
            var headers = [("Authorization", "Bearer \(token.reveal())"), ("Accept", "application/json")]
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let request = HTTPRequest(method: method, url: settings.baseURL + path, headers: headers, body: body)
            var errorBody: [UInt8] = []
            var status = 0
            var delivered = false
            var received = 0
            let sent = Date()
            let failure: DatabricksError
            let retryable: Bool
            do {
                let head = try transport.perform(request, onHead: { h in status = h.status }) { chunk in
                    received += chunk.count
                    if status >= 200 && status < 300 {
                        delivered = true
                        try consume(chunk)
                    } else if errorBody.count < 1 << 20 {
                        errorBody.append(contentsOf: chunk)
                    }
                }
                logger.trace("\(method.rawValue) \(path) → HTTP \(head.status)", metadata: [
                    "bytes": "\(received)", "ms": "\(Int(Date().timeIntervalSince(sent) * 1000))",
                    "attempt": "\(attempt)",
                ])
                if head.status >= 200 && head.status < 300 { return head }
                failure = ErrorClassification.http(status: head.status, body: errorBody, headers: head,
                    host: settings.hostName, context: context)
                if failure.category == .authenticationFailed && head.status == 403 && !refreshedToken && tokens.invalidate() {
                    refreshedToken = true
                    continue
                }
                retryable = rule.shouldRetry(status: head.status)
            } catch let e as TransportError {
                failure = ErrorClassification.transport(e, context: context)
                retryable = rule.shouldRetry(e, answerStarted: delivered)
            }
            let elapsed = Date().timeIntervalSince(started)
            guard retryable, attempt < retryPolicy.maxAttempts, elapsed < retryPolicy.budget else {
                throw attempt > 1 ? failure.afterAttempts(attempt, seconds: elapsed) : failure
            }
            if delivered { try restart() }
            let wait = retryPolicy.delay(attempt: attempt, retryAfter: failure.retryAfter)
            logger.warning("\(failure.category) — retrying in \(String(format: "%.1f", wait))s (attempt \(attempt + 1))",
                metadata: ["request": "\(method.rawValue) \(path)", "error": "\(failure.message)"])
            Thread.sleep(forTimeInterval: wait)
        }
    }

    /// A GET whose small JSON body is decoded whole.
    func getJSON<T: Decodable>(_ type: T.Type, path: String, context: String) throws -> T {
        var out: [UInt8] = []
        _ = try send(.get, path: path, body: nil, rule: .idempotent, context: context,
            restart: { out.removeAll() }, consume: { out.append(contentsOf: $0) })
        do {
            return try JSONDecoder().decode(T.self, from: Data(out))
        } catch {
            throw DatabricksError(.invalidResponse, "\(context): unexpected response (\(error))",
                remedy: "Check that the host is a Databricks workspace.")
        }
    }
}

@available(*, unavailable)
extension WorkspaceAPI: Sendable {}
