import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A request as the simulator's handlers see it: the body already read, the query parsed.
struct APIRequest: Sendable {
    /// Upper case (`GET`, `POST`).
    var method: String
    /// The path as sent, without the query.
    var path: String
    /// Query parameters, percent-decoded (`+` as a space in values); the first of a repeated name wins.
    var query: [String: String]
    var headers: HTTPFields
    /// The `Host` header (HTTP/1.1's authority).
    var host: String?
    var body: [UInt8]

    init(
        method: String, path: String, query: [String: String] = [:], headers: HTTPFields = [:], host: String? = nil,
        body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.host = host
        self.body = body
    }

    /// A request head and its collected body.
    init(_ request: Request, body: [UInt8]) {
        let uri = request.uri
        self.init(
            method: request.method.rawValue.uppercased(), path: uri.path, query: Self.parseQuery(uri.query),
            headers: request.headers, host: request.head.authority, body: body)
    }

    /// The value of header `name` (case-insensitive), the last one when repeated.
    func header(_ name: String) -> String? {
        guard let n = HTTPField.Name(name) else { return nil }
        return headers[n]
    }

    static func parseQuery(_ query: String?) -> [String: String] {
        guard let query else { return [:] }
        var out: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = String(kv[0]).removingPercentEncoding ?? String(kv[0])
            let v =
                kv.count > 1
                ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
            if out[k] == nil { out[k] = v }
        }
        return out
    }
}

/// A response a handler renders: status, headers and a body in one buffer (shared, not copied, when it comes from
/// the rendered-file cache).
struct APIResponse: Sendable {
    var status: Int
    var headers: HTTPFields
    var body: ByteBuffer

    init(status: Int, body: ByteBuffer = ByteBuffer(), contentType: String? = "application/json") {
        self.status = status
        self.body = body
        headers = [:]
        if let contentType { headers[.contentType] = contentType }
    }

    init(status: Int, json: [UInt8], contentType: String = "application/json") {
        self.init(status: status, body: ByteBuffer(bytes: json), contentType: contentType)
    }

    /// Sets (replaces) header `name`.
    mutating func setHeader(_ name: String, _ value: String) {
        guard let n = HTTPField.Name(name) else { return }
        headers[n] = value
    }

    /// The Hummingbird response; the reason phrase is the one the simulator has always sent.
    var hummingbird: Response {
        Response(
            status: HTTPResponse.Status(code: status, reasonPhrase: Self.reason(status)), headers: headers,
            body: ResponseBody(byteBuffer: body))
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Payload Too Large"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Status \(status)"
        }
    }
}

extension APIResponse: ResponseGenerator {
    func response(from request: Request, context: some RequestContext) throws -> Response { hummingbird }
}

/// An error starting or configuring the simulator.
public struct SimulatorError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
