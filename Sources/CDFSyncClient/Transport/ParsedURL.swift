import CCurl
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A URL as libcurl parses it (`curl_url`): the scheme, host and port the transport will actually connect to.
///
/// Checks of where a request may go (plain http only to loopback) look at this, never at the URL's text: a prefix
/// test let `http://localhost@192.0.2.1:9/hook` (user `localhost` at 192.0.2.1) and `http://127.0.0.1.nip.io/` (a
/// public DNS name) through, and they received the bearer token over plain http.
public struct ParsedURL: Sendable, Equatable {
    /// Lower-cased, e.g. `https`.
    public var scheme: String
    /// As libcurl normalises it: lower-cased names, IPv4 in dotted form (`http://2130706433/` → `127.0.0.1`), IPv6
    /// in brackets (`[::1]`).
    public var host: String
    /// The port given in the URL, if any.
    public var port: Int?
    /// Whether the URL carries a user name or password (`user:pass@host`).
    public var hasUserInfo: Bool
    /// The path, `/` at least.
    public var path: String
    /// The query, without `?`.
    public var query: String?

    /// Why a URL was refused: one sentence naming the part (never the URL, which may carry credentials).
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses `text` with libcurl's URL API.
    /// - Throws: ``Problem`` when libcurl refuses it (no scheme, an unsupported scheme, a bad host or port,
    ///   control characters or spaces...).
    public init(_ text: String) throws(Problem) {
        precondition(CurlGlobal.initialized, "curl_global_init failed")
        guard let handle = curl_url() else { throw Problem(message: "cannot parse the URL (out of memory)") }
        defer { curl_url_cleanup(handle) }
        let rc = ccurl_url_parse(handle, text)
        guard rc == CURLUE_OK else {
            throw Problem(message: "not a URL libcurl accepts (\(String(cString: curl_url_strerror(rc))))")
        }
        func part(_ which: CURLUPart) -> String? {
            var out: UnsafeMutablePointer<CChar>?
            guard ccurl_url_get_part(handle, which, &out) == CURLUE_OK, let out else { return nil }
            defer { curl_free(out) }
            return String(cString: out)
        }
        guard let scheme = part(CURLUPART_SCHEME), let host = part(CURLUPART_HOST), !host.isEmpty else {
            throw Problem(message: "the URL names no host")
        }
        self.scheme = scheme.lowercased()
        self.host = host.lowercased()
        port = part(CURLUPART_PORT).flatMap { Int($0) }
        hasUserInfo = part(CURLUPART_USER) != nil || part(CURLUPART_PASSWORD) != nil || part(CURLUPART_OPTIONS) != nil
        path = part(CURLUPART_PATH) ?? "/"
        query = part(CURLUPART_QUERY)
    }

    /// Whether the host is this machine by address or by the one name that always is: any address in
    /// 127.0.0.0/8, `::1`, or exactly `localhost`. (`127.0.0.1.nip.io` is a public DNS name, not loopback.)
    public var isLoopback: Bool { Self.isLoopback(host: host) }

    /// ``isLoopback`` for a host as ``host`` gives it.
    public static func isLoopback(host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        let bare = host.utf8.first == UInt8(ascii: "[") && host.utf8.last == UInt8(ascii: "]")
            ? String(decoding: host.utf8.dropFirst().dropLast(), as: UTF8.self) : host
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, bare, &v6) == 1 else { return false }
        return withUnsafeBytes(of: &v6) { $0.elementsEqual([UInt8](repeating: 0, count: 15) + [1]) }
    }

    /// Refuses what a URL that carries credentials (a bearer token, a workspace token) must not be: one with
    /// user info, one of another scheme than https — or http to anything but loopback.
    /// - Throws: ``Problem`` saying which rule it breaks.
    public func requireSecure() throws(Problem) {
        guard !hasUserInfo else {
            throw Problem(message: "the URL carries user info (user@ or user:password@ before the host); give the host "
                + "alone and credentials through their own settings")
        }
        switch scheme {
        case "https": return
        case "http":
            guard isLoopback else {
                throw Problem(message: "plain http is refused for \(host) (only https, or http to 127.0.0.0/8, ::1 or "
                    + "localhost)")
            }
        default:
            throw Problem(message: "scheme \(scheme) is not https")
        }
    }
}
