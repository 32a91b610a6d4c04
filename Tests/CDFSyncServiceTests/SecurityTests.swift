import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncTestSupport
import Foundation
import Testing

@testable import CDFSyncService

/// Who may call the service: loopback by default, a token for anything else, the login cookie, cross-site refusals,
/// no secret in any answer. Each rule over real HTTP.
@Suite("serve: security")
struct SecurityTests {
    static let token = "s3cret-token-0123456789abcdef"

    @Test func aNonLoopbackAddressNeedsAToken() throws {
        let dir = TempDir("serve-sec")
        try FileManager.default.createDirectory(atPath: dir.sub("p"), withIntermediateDirectories: true)
        var config = ServeConfiguration(pipelinesDirectory: dir.sub("p")) { _ in throw SyncError("unused", remedy: "") }
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"] {
            config.host = host
            #expect(throws: Never.self) { try config.validate() }
        }
        for host in ["0.0.0.0", "192.0.2.10", "::", "example.org"] {
            config.host = host
            #expect { try config.validate() } throws: { error in
                "\(error)".contains("is not a loopback address") && "\(error)".contains("--token-env")
            }
        }
        config.host = "0.0.0.0"
        config.apiToken = Secret("short")
        #expect { try config.validate() } throws: { "\($0)".contains("shorter than 16") }
        config.apiToken = Secret(Self.token)
        #expect(throws: Never.self) { try config.validate() }
    }

    @Test func withATokenEveryCallNeedsItAndTheLoginGivesACookieThatIsNotTheToken() async throws {
        let f = try ServeFixture { $0.apiToken = Secret(Self.token) }
        let live = try await LiveServer(f.server)
        // Probes stay open (orchestrators call them without credentials); they say nothing else.
        #expect(try await live.request(.get, "/healthz").status == 200)
        #expect(try await live.request(.get, "/readyz").status == 200)

        for (method, path) in [(HTTPRequest.Method.get, "/api/pipelines"), (.get, "/api/status"), (.get, "/metrics"),
                               (.post, "/api/pipelines/panel/run"), (.get, "/api/pipelines/panel/runs")] {
            let none = try await live.request(method, path)
            #expect(none.status == 401, "\(path) without a token: \(none.status)")
            #expect(none.headers["www-authenticate"] == "Bearer realm=\"cdfsync\"")
            let wrong = try await live.request(method, path, headers: [("Authorization", "Bearer not-the-token")])
            #expect(wrong.status == 401, "\(path) with a wrong token")
        }
        let ok = try await live.request(.get, "/api/pipelines", headers: [("Authorization", "Bearer \(Self.token)")])
        #expect(ok.status == 200)

        // A person opening the console goes to the login page.
        let console = try await live.request(.get, "/")
        #expect(console.status == 302 && console.headers["location"] == "/login", "\(console)")
        let page = try await live.request(.get, "/login")
        #expect(page.status == 200 && page.body.contains("type=\"password\""))

        let bad = try await live.request(.post, "/login", headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: "token=guess")
        #expect(bad.status == 401 && bad.headers["set-cookie"] == nil)

        let login = try await live.request(.post, "/login",
            headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "token=\(Self.token)")
        #expect(login.status == 303 && login.headers["location"] == "/", "\(login)")
        let cookie = try #require(login.headers["set-cookie"])
        #expect(cookie.contains("HttpOnly"), "\(cookie)")
        #expect(cookie.contains("SameSite=Strict"), "\(cookie)")
        #expect(!cookie.contains(Self.token), "the cookie holds a session id, not the token")
        let session = try #require(cookie.split(separator: ";").first.map(String.init))
        #expect(session.hasPrefix("cdfsync_session=") && session.count == "cdfsync_session=".count + 64)

        let withCookie = try await live.request(.get, "/api/pipelines", headers: [("Cookie", session)])
        #expect(withCookie.status == 200)
        let forged = try await live.request(.get, "/api/pipelines", headers: [("Cookie", "cdfsync_session=" + String(
            repeating: "0", count: 64))])
        #expect(forged.status == 401)

        // Logging out ends the session.
        let out = try await live.request(.post, "/logout", headers: [("Cookie", session)])
        #expect(out.status == 303)
        #expect(try await live.request(.get, "/api/pipelines", headers: [("Cookie", session)]).status == 401)

        // Nothing served carries the token.
        for path in ["/api/pipelines", "/api/status", "/metrics", "/login"] {
            let r = try await live.request(.get, path, headers: [("Authorization", "Bearer \(Self.token)")])
            #expect(!r.body.contains(Self.token) && !r.body.contains("dapi-demo-token"), "\(path)")
        }
        try await live.stop()
    }

    @Test func stateChangingCallsFromAnotherSiteAreRefused() async throws {
        let f = try ServeFixture()
        let live = try await LiveServer(f.server)
        let host = "127.0.0.1:\(live.port)"
        for headers in [[("Sec-Fetch-Site", "cross-site")], [("Sec-Fetch-Site", "same-site")],
                        [("Sec-Fetch-Site", "cross-site"), ("Origin", "http://\(host)")],
                        [("Origin", "http://evil.example")], [("Origin", "http://127.0.0.1:1")], [("Origin", "null")]] {
            let r = try await live.request(.post, "/api/pipelines/panel/run", headers: headers)
            #expect(r.status == 403, "\(headers): \(r.status) \(r.body)")
            #expect(r.body.contains("refused"))
        }
        // The console's own requests, and programs that send neither header, are served.
        let own = try await live.request(.post, "/api/pipelines/nope/run",
            headers: [("Origin", "http://\(host)"), ("Sec-Fetch-Site", "same-origin")])
        #expect(own.status == 404, "passes the check, then finds no such pipeline: \(own.body)")
        let program = try await live.request(.post, "/api/pipelines/nope/run")
        #expect(program.status == 404)
        // Reading is not state-changing: a cross-site GET is answered (the browser keeps it from the other page).
        #expect(try await live.request(.get, "/healthz", headers: [("Sec-Fetch-Site", "cross-site")]).status == 200)
        try await live.stop()
    }

    @Test func withoutATokenOnlyLoopbackNamesAreServed() async throws {
        let f = try ServeFixture()
        let live = try await LiveServer(f.server)
        let rebound = try await live.request(.get, "/api/pipelines", headers: [("Host", "attacker.example:\(live.port)")])
        #expect(rebound.status == 421, "a DNS-rebinding page's request: \(rebound.status)")
        for host in ["localhost:\(live.port)", "127.0.0.1:\(live.port)", "[::1]:\(live.port)"] {
            #expect(try await live.request(.get, "/api/pipelines", headers: [("Host", host)]).status == 200, "\(host)")
        }
        try await live.stop()
    }

    @Test func responsesForbidCachingFramingAndForeignContent() async throws {
        let f = try ServeFixture()
        let live = try await LiveServer(f.server)
        let r = try await live.request(.get, "/api/pipelines")
        #expect(r.headers["cache-control"] == "no-store")
        #expect(r.headers["x-content-type-options"] == "nosniff")
        #expect(r.headers["x-frame-options"] == "DENY")
        #expect(r.headers["content-security-policy"]?.contains("default-src 'self'") == true)
        #expect(r.headers["content-security-policy"]?.contains("frame-ancestors 'none'") == true)
        try await live.stop()
    }
}
