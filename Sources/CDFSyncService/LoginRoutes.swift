import CDFSyncClient
import Foundation
import HTTPTypes
import Hummingbird

/// The login page (only when the service has a token): the token typed once gives a session cookie — HttpOnly (no
/// script reads it), SameSite=Strict (no other site's page sends it), holding a random session id, never the token.
extension CDFSyncServer {
    func addLoginRoutes(to router: Router<BasicRequestContext>) {
        router.get("/login") { [security] _, _ in
            guard security.token != nil else { return Response.redirect(to: "/", type: .found) }
            return Self.loginPage(message: nil, status: .ok)
        }
        router.post("/login") { [security] request, _ in
            guard let token = security.token else { return Response.redirect(to: "/", type: .found) }
            let body = try await request.body.collect(upTo: 16 << 10)
            let form = Self.formFields(String(buffer: body))
            guard let given = form["token"],
                Security.constantTimeEqual(Array(given.utf8), Array(token.reveal().utf8))
            else {
                return Self.loginPage(message: "That is not the service's token.", status: .unauthorized)
            }
            var response = Response.redirect(to: "/", type: .normal)
            response.setCookie(Cookie(name: Security.cookieName, value: security.sessions.create(),
                maxAge: Int(Security.sessionSeconds), path: "/", httpOnly: true, sameSite: .strict))
            return response
        }
        router.post("/logout") { [security] request, _ in
            if let id = request.cookies[Security.cookieName]?.value { security.sessions.remove(id) }
            var response = Response.redirect(to: security.token == nil ? "/" : "/login", type: .normal)
            response.setCookie(Cookie(name: Security.cookieName, value: "", maxAge: 0, path: "/", httpOnly: true,
                sameSite: .strict))
            return response
        }
    }

    /// `application/x-www-form-urlencoded` fields (the last of a repeated name wins).
    static func formFields(_ body: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            guard let k = kv.first else { continue }
            out[decode(k)] = kv.count > 1 ? decode(kv[1]) : ""
        }
        return out
    }

    static func loginPage(message: String?, status: HTTPResponse.Status) -> Response {
        let note = message.map { "<p class=\"error\" role=\"alert\">\(HTML.escape($0))</p>" } ?? ""
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>cdfsync — sign in</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="stylesheet" href="/console/console.css"></head>
            <body class="login"><main>
            <h1>cdfsync</h1>
            <form method="post" action="/login">
            <label for="token">API token</label>
            <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
            \(note)
            <button type="submit">Sign in</button>
            </form>
            <p class="hint">The token is the value of the environment variable given to <code>cdfsync serve --token-env</code>.</p>
            </main></body></html>
            """
        return HTML.response(html, status: status)
    }
}

/// HTML pages of the service.
enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func response(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }
}
