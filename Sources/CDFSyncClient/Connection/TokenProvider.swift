import Foundation
import Synchronization

/// Supplies the `Authorization` header for workspace API calls.
public protocol TokenProvider: Sendable {
    /// A valid bearer token, fetching or refreshing it when needed.
    func bearerToken(using transport: CurlTransport) throws -> Secret
    /// Forgets a token the server rejected, so the next call fetches a new one. Returns whether a refresh is possible.
    func invalidate() -> Bool
}

/// A personal access token: nothing to refresh.
public struct StaticTokenProvider: TokenProvider {
    let token: Secret
    public init(token: Secret) { self.token = token }
    public func bearerToken(using transport: CurlTransport) throws -> Secret { token }
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

    public func bearerToken(using transport: CurlTransport) throws -> Secret {
        if let cached = state.withLock({ $0 }), now() < cached.staleAt { return cached.token }
        let fresh = try fetch(using: transport)
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

    private func fetch(using transport: CurlTransport) throws -> Cached {
        let basic = Data("\(formEncode(clientID)):\(formEncode(clientSecret.reveal()))".utf8).base64EncodedString()
        let body = "grant_type=client_credentials&scope=\(formEncode(scope))"
        let request = HTTPRequest(
            method: .post, url: baseURL + "/oidc/v1/token",
            headers: [("Authorization", "Basic \(basic)"), ("Content-Type", "application/x-www-form-urlencoded"),
                      ("Accept", "application/json")],
            body: Array(body.utf8))
        let host = URLComponents(string: baseURL)?.host ?? baseURL
        let head: HTTPResponseHead
        let bytes: [UInt8]
        do {
            (head, bytes) = try transport.performCollecting(request, limit: 1 << 20)
        } catch let error as TransportError {
            throw ErrorClassification.transport(error, context: "OAuth token request")
        }
        guard head.status == 200 else {
            let err = try? JSONDecoder().decode(OAuthErrorBody.self, from: Data(bytes))
            let what = [err?.error, err?.error_description].compactMap { $0 }.joined(separator: ": ")
            throw DatabricksError(
                .authenticationFailed,
                "OAuth token request for client \(clientID) failed with HTTP \(head.status)\(what.isEmpty ? "" : " (\(what))")",
                remedy: "Check the service principal's client id and secret (DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET) and that it belongs to \(host).",
                httpStatus: head.status)
        }
        guard let token = try? JSONDecoder().decode(TokenResponse.self, from: Data(bytes)), !token.access_token.isEmpty else {
            throw DatabricksError(.invalidResponse, "OAuth token response from \(host) has no access_token",
                remedy: "The token endpoint answered unexpectedly; check the host is a Databricks workspace.")
        }
        let ttl = token.expires_in ?? 3600
        let issued = now()
        return Cached(
            token: Secret(token.access_token), expiresAt: issued.addingTimeInterval(ttl),
            staleAt: issued.addingTimeInterval(ttl - min(ttl / 2, 20 * 60)))
    }

    private func formEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}
