import CDFSyncClient
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Who may call the service, and from where (docs/serve.md, Security):
///
/// - With a token (`--token-env`), every path but `/healthz`, `/readyz` and the login page needs it: as
///   `Authorization: Bearer <token>`, or the session cookie the login page sets (`HttpOnly`, `SameSite=Strict`;
///   its value is a random session id, never the token). Without a token the service listens on loopback only, and
///   a request whose `Host` is not a loopback name is refused (a DNS-rebinding page cannot reach it).
/// - A state-changing request (anything but GET, HEAD, OPTIONS) is refused when it comes from another site:
///   `Sec-Fetch-Site` other than `same-origin` or `none`, or (without `Sec-Fetch-Site`) an `Origin` that is not the
///   service's own.
/// - Every response says `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, a Content-Security-Policy
///   that allows nothing from elsewhere, and `Referrer-Policy: same-origin`; no page may frame it.
struct Security: RouterMiddleware {
    typealias Context = BasicRequestContext

    static let cookieName = "cdfsync_session"
    /// How long a console session lasts.
    static let sessionSeconds: Double = 12 * 3600
    /// Paths open without a token: liveness and readiness probes, the login page and its stylesheet.
    static let openPaths: Set<String> = ["/healthz", "/readyz", "/login", "/console/console.css"]

    let token: Secret?
    /// No token: only requests addressed to a loopback name are served.
    let loopbackOnly: Bool
    let sessions = Sessions()

    static let sameSite = HTTPField.Name("Sec-Fetch-Site")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var response = try await check(request, context: context, next: next)
        response.headers[.cacheControl] = "no-store"
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        response.headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            + "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        return response
    }

    private func check(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let path = request.uri.path
        if loopbackOnly, let host = request.head.authority, !Self.isLoopbackAuthority(host) {
            return APIError.make(.misdirectedRequest, "this service answers requests to 127.0.0.1 or localhost only",
                remedy: "Open it at http://127.0.0.1:<port>/ (or start it with --host and --token-env to reach it "
                    + "from elsewhere).")
        }
        if let refusal = crossSiteRefusal(request) { return refusal }
        guard token != nil, !Self.openPaths.contains(path) else { return try await next(request, context) }
        if isAuthenticated(request) { return try await next(request, context) }
        // A person opening the console is sent to the login page; a program is told what to send.
        if request.method == .get, !path.hasPrefix("/api/"), path != "/metrics" {
            return Response.redirect(to: "/login", type: .found)
        }
        var refused = APIError.make(.unauthorized, "this call needs the service's API token",
            remedy: "Send `Authorization: Bearer <token>` (the token in the --token-env variable of `cdfsync serve`).")
        refused.headers[.wwwAuthenticate] = "Bearer realm=\"cdfsync\""
        return refused
    }

    /// Whether the request carries the token, or a live session cookie.
    func isAuthenticated(_ request: Request) -> Bool {
        guard let token else { return true }
        if let auth = request.headers[.authorization], auth.lowercased().hasPrefix("bearer ") {
            return Self.constantTimeEqual(Array(auth.dropFirst(7).utf8), Array(token.reveal().utf8))
        }
        if let id = request.cookies[Self.cookieName]?.value { return sessions.isValid(id) }
        return false
    }

    /// A state-changing request from another site: refused.
    func crossSiteRefusal(_ request: Request) -> Response? {
        guard ![.get, .head, .options].contains(request.method) else { return nil }
        // A browser that says where the request comes from (Sec-Fetch-Site) is believed; an older one is judged by
        // its Origin (a form post of a page with a strict referrer policy may say `Origin: null`, hence this order).
        if let site = request.headers[Self.sameSite]?.lowercased() {
            guard site == "same-origin" || site == "none" else {
                return APIError.make(.forbidden, "cross-site request refused (Sec-Fetch-Site: \(site))",
                    remedy: "Change state from the console itself, or from a program (curl, a job) with the token.")
            }
            return nil
        }
        if let origin = request.headers[.origin] {
            let own = request.head.authority.map { ["http://\($0)", "https://\($0)"] } ?? []
            guard own.contains(origin.lowercased()) || own.contains(origin) else {
                return APIError.make(.forbidden, "cross-origin request refused (Origin: \(origin))",
                    remedy: "Change state from the console itself, or from a program (curl, a job) with the token.")
            }
        }
        return nil
    }

    /// `127.0.0.1:8480`, `localhost`, `[::1]:8480` …
    static func isLoopbackAuthority(_ authority: String) -> Bool {
        var host = Substring(authority)
        if host.hasPrefix("[") {
            host = host.dropFirst().prefix { $0 != "]" }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        return ServeConfiguration.isLoopback(String(host))
    }

    /// Compares without stopping at the first difference (the time taken says nothing of the token).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

/// Console sessions: random ids, each valid for ``Security/sessionSeconds`` (in memory: a restart logs out).
final class Sessions: Sendable {
    private let expiries = Mutex<[String: Date]>([:])

    /// A new session id: 32 random bytes (the system's CSPRNG), hex.
    func create(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        expiries.withLock { all in
            all = all.filter { $0.value > now }
            all[id] = now.addingTimeInterval(Security.sessionSeconds)
        }
        return id
    }

    func isValid(_ id: String, now: Date = Date()) -> Bool {
        expiries.withLock { $0[id].map { $0 > now } ?? false }
    }

    func remove(_ id: String) {
        expiries.withLock { _ = $0.removeValue(forKey: id) }
    }
}
