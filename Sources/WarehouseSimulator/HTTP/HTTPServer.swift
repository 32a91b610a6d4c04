import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One parsed HTTP/1.1 request.
struct HTTPRequest: Sendable {
    var method: String
    /// The request target as sent (path plus query).
    var target: String
    var path: String
    var query: [String: String]
    /// Header names lower-cased.
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0 == n }?.1
    }
}

/// How a response is delivered; faults change it.
enum Delivery: Sendable {
    case normal
    /// Send the headers and half the body, then reset the connection.
    case resetMidBody
    /// Wait this many milliseconds before sending.
    case slow(Int)
    /// Close the connection without answering.
    case drop
}

/// A response; the body is rendered into a byte buffer owned by the connection thread.
final class HTTPResponse {
    var status: Int
    var headers: [(String, String)] = []
    var body: ByteBuffer
    /// When set, sent instead of `body`.
    var arrayBody: [UInt8]?
    var delivery: Delivery = .normal

    init(status: Int, body: ByteBuffer = ByteBuffer(capacity: 256), contentType: String? = "application/json") {
        self.status = status
        self.body = body
        if let contentType { headers.append(("content-type", contentType)) }
    }

    convenience init(status: Int, json: [UInt8], contentType: String = "application/json") {
        let b = ByteBuffer(capacity: json.count + 16)
        b.append(json)
        self.init(status: status, body: b, contentType: contentType)
    }

    func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.0.lowercased() == name.lowercased() }
        headers.append((name, value))
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

/// A small HTTP/1.1 server on POSIX sockets: one thread per connection, keep-alive,
/// Content-Length or chunked request bodies, responses always with Content-Length.
final class HTTPServer: Sendable {
    typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse

    private struct State {
        var listenFD: Int32 = -1
        var connections: Set<Int32> = []
        var running = false
        var port = 0
    }

    private let state = Locked(State())
    private let handler: Handler
    /// Largest request body accepted (statements are at most 16 MiB).
    static let maxBody = 32 << 20
    static let maxHeader = 64 << 10

    init(handler: @escaping Handler) {
        self.handler = handler
    }

    var port: Int { state.withLock { $0.port } }

    /// Binds and starts accepting; returns the bound port.
    func start(host: String, port: Int) throws -> Int {
        signal(SIGPIPE, SIG_IGN)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SimulatorError("socket() failed: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw SimulatorError("invalid IPv4 address \(host)")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let msg = String(cString: strerror(errno))
            close(fd)
            throw SimulatorError("cannot bind \(host):\(port): \(msg)")
        }
        guard listen(fd, 256) == 0 else {
            close(fd)
            throw SimulatorError("listen() failed")
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let boundPort = Int(UInt16(bigEndian: actual.sin_port))
        state.withLock {
            $0.listenFD = fd
            $0.running = true
            $0.port = boundPort
        }
        let t = Thread { [self] in acceptLoop(fd) }
        t.name = "dbsql-sim-accept"
        t.start()
        return boundPort
    }

    /// Stops accepting and closes every open connection.
    ///
    /// Descriptors are only shut down here; the threads that own them close them, so a descriptor
    /// number is never reused (by another server in the process) while something still uses it.
    func stop() {
        state.withLock { s in
            s.running = false
            if s.listenFD >= 0 { shutdown(s.listenFD, Int32(SHUT_RDWR)) }
            s.listenFD = -1
            // Under the lock: a connection thread removes its descriptor (under the lock) before closing it.
            for c in s.connections { shutdown(c, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptLoop(_ fd: Int32) {
        defer { close(fd) }
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                let err = errno
                let running = state.withLock { $0.running }
                if !running { return }
                switch err {
                case EINTR, ECONNABORTED, EPROTO, EAGAIN: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    usleep(10_000)
                    continue
                default:
                    return  // EBADF, EINVAL: the socket is gone
                }
            }
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let accepted = state.withLock { s -> Bool in
                guard s.running else { return false }
                s.connections.insert(c)
                return true
            }
            guard accepted else {
                close(c)
                return
            }
            let t = Thread { [self] in
                serve(c)
                state.withLock { _ = $0.connections.remove(c) }
                close(c)
            }
            t.stackSize = 1 << 20
            t.start()
        }
    }

    private func serve(_ fd: Int32) {
        var reader = ConnectionReader(fd: fd)
        while true {
            let req: HTTPRequest
            switch reader.readRequest() {
            case .request(let r): req = r
            case .closed: return
            case .bad(let status, let message):
                let resp = HTTPResponse(status: status, contentType: "text/plain")
                resp.body.append(string: message)
                _ = write(resp, to: fd, keepAlive: false)
                return
            }
            let resp = handler(req)
            let connHeader = req.header("connection")?.lowercased()
            let keepAlive = connHeader != "close" && !(reader.lastVersion == "HTTP/1.0" && connHeader != "keep-alive")
            if !write(resp, to: fd, keepAlive: keepAlive) || !keepAlive { return }
        }
    }

    /// Writes a response; false when the connection must be closed.
    private func write(_ resp: HTTPResponse, to fd: Int32, keepAlive: Bool) -> Bool {
        if case .drop = resp.delivery { return false }
        if case .slow(let ms) = resp.delivery { usleep(UInt32(max(0, ms)) * 1000) }
        var head = "HTTP/1.1 \(resp.status) \(HTTPResponse.reason(resp.status))\r\n"
        for (k, v) in resp.headers { head += "\(k): \(v)\r\n" }
        if let a = resp.arrayBody {
            return a.withUnsafeBytes { writeParts(head, $0, resp.delivery, fd, keepAlive) }
        }
        return writeParts(head, resp.body.bytes, resp.delivery, fd, keepAlive)
    }

    private func writeParts(
        _ statusAndHeaders: String, _ body: UnsafeRawBufferPointer, _ delivery: Delivery, _ fd: Int32, _ keepAlive: Bool
    ) -> Bool {
        var head = statusAndHeaders
        head += "content-length: \(body.count)\r\n"
        if !keepAlive { head += "connection: close\r\n" }
        head += "\r\n"
        let headBytes = Array(head.utf8)
        if case .resetMidBody = delivery {
            guard headBytes.withUnsafeBytes({ sendAll(fd, $0, more: true) }) else { return false }
            _ = sendAll(fd, UnsafeRawBufferPointer(rebasing: body[0..<(body.count / 2)]), more: false)
            var lg = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, socklen_t(MemoryLayout<linger>.size))
            return false
        }
        let ok = headBytes.withUnsafeBytes { sendAll(fd, $0, more: body.count > 0) }
        guard ok else { return false }
        return sendAll(fd, body, more: false)
    }

    private func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, more: Bool) -> Bool {
        var off = 0
        let flags = Int32(MSG_NOSIGNAL) | (more ? Int32(MSG_MORE) : 0)
        while off < bytes.count {
            let n = send(fd, bytes.baseAddress! + off, bytes.count - off, flags)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            off += n
        }
        return true
    }
}

/// Reads requests from one connection, buffering bytes between them.
struct ConnectionReader {
    enum Outcome {
        case request(HTTPRequest)
        case closed
        case bad(Int, String)
    }

    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    var lastVersion = "HTTP/1.1"

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(16 << 10)
    }

    private mutating func fill() -> Bool {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 20 {
            buffer.removeFirst(start)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
    }

    private func find(_ pattern: [UInt8], from: Int) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        var i = from
        while i + pattern.count <= buffer.count {
            if buffer[i] == pattern[0] && Array(buffer[i..<(i + pattern.count)]) == pattern { return i }
            i += 1
        }
        return nil
    }

    mutating func readRequest() -> Outcome {
        // Headers.
        var headerEnd: Int?
        // How far past `start` has been scanned; relative, because fill() may move the bytes.
        var scanned = 0
        while true {
            if let e = find([13, 10, 13, 10], from: start + scanned) {
                headerEnd = e
                break
            }
            scanned = max(0, buffer.count - start - 3)
            if buffer.count - start > HTTPServer.maxHeader { return .bad(431, "request headers too large") }
            if !fill() { return .closed }
        }
        let head = String(decoding: buffer[start..<headerEnd!], as: UTF8.self)
        start = headerEnd! + 4
        var lines = head.components(separatedBy: "\r\n")
        // Tolerate stray CRLFs between requests.
        while let f = lines.first, f.isEmpty { lines.removeFirst() }
        guard let requestLine = lines.first else { return .bad(400, "empty request") }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3 else { return .bad(400, "malformed request line") }
        lastVersion = String(parts[2])
        var headers: [(String, String)] = []
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: ":") else { return .bad(400, "malformed header") }
            headers.append(
                (l[..<colon].trimmingCharacters(in: .whitespaces).lowercased(),
                 l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        func header(_ n: String) -> String? { headers.first { $0.0 == n }?.1 }
        // libcurl asks before sending a large body.
        if header("expect")?.lowercased() == "100-continue" {
            let interim = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
            _ = interim.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        // Body.
        var body: [UInt8] = []
        if let te = header("transfer-encoding"), te.lowercased().contains("chunked") {
            while true {
                var lineEnd: Int?
                while true {
                    if let e = find([13, 10], from: start) {
                        lineEnd = e
                        break
                    }
                    if !fill() { return .closed }
                }
                let sizeText = String(decoding: buffer[start..<lineEnd!], as: UTF8.self)
                    .split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                guard let size = Int(sizeText, radix: 16), size >= 0 else { return .bad(400, "bad chunk size") }
                start = lineEnd! + 2
                if size == 0 {
                    // Trailers until an empty line.
                    while true {
                        var e: Int?
                        while true {
                            if let x = find([13, 10], from: start) {
                                e = x
                                break
                            }
                            if !fill() { return .closed }
                        }
                        let empty = e! == start
                        start = e! + 2
                        if empty { break }
                    }
                    break
                }
                guard body.count + size <= HTTPServer.maxBody else { return .bad(413, "request body too large") }
                while buffer.count - start < size + 2 {
                    if !fill() { return .closed }
                }
                body.append(contentsOf: buffer[start..<(start + size)])
                start += size + 2
            }
        } else if let cl = header("content-length") {
            guard let n = Int(cl), n >= 0 else { return .bad(400, "bad content-length") }
            guard n <= HTTPServer.maxBody else { return .bad(413, "request body too large") }
            while buffer.count - start < n {
                if !fill() { return .closed }
            }
            body = Array(buffer[start..<(start + n)])
            start += n
        }
        let target = String(parts[1])
        var path = target
        var query: [String: String] = [:]
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            for pair in target[target.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let k = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                let v = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
                if query[k] == nil { query[k] = v }
            }
        }
        return .request(
            HTTPRequest(method: String(parts[0]).uppercased(), target: target, path: path, query: query, headers: headers, body: body))
    }
}

/// An error starting or configuring the simulator.
public struct SimulatorError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
