import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
@testable import WarehouseSimulator

#if canImport(Glibc)
import Glibc
#endif

/// A response as the test client saw it.
struct Reply: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

struct ClientError: Error, CustomStringConvertible {
    var description: String
}

/// A minimal HTTP/1.1 client over a POSIX socket; one connection, reusable (keep-alive). For the tests where the
/// wire matters (transport faults, request framing, garbage bytes, the built `dbsql-sim`); everything else goes
/// through Hummingbird's router test mode.
final class TestConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        // A server that never answers fails the test instead of hanging the suite.
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { throw ClientError(description: "connect failed") }
    }

    deinit { close(fd) }

    func sendRaw(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError(description: "send failed") }
            off += n
        }
    }

    func request(
        _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]? = nil
    ) throws -> Reply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        try sendRaw(Array(head.utf8) + (body ?? []))
        return try readReply()
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { throw ClientError(description: "connection closed (\(n))") }
        buffer.append(contentsOf: chunk[0..<n])
    }

    func readReply() throws -> Reply {
        var end: Int?
        while end == nil {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                    end = i
                    break
                }
            }
            if end == nil { try fill() }
        }
        let head = String(decoding: buffer[0..<end!], as: UTF8.self)
        buffer.removeFirst(end! + 4)
        let lines = head.components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for l in lines.dropFirst() {
            if let c = l.firstIndex(of: ":") {
                headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while buffer.count < length { try fill() }
        let body = Array(buffer[0..<length])
        buffer.removeFirst(length)
        return Reply(status: status, headers: headers, body: body)
    }
}

/// A simulator plus helpers for its API. Requests go through Hummingbird's router test mode (no socket: the router,
/// the middleware and the handlers, as the server runs them); with `socket: true` the simulator also listens on a free
/// loopback port and `call` goes over a ``TestConnection``, for tests where the wire matters.
final class Harness {
    let sim: Simulator
    let app: Application<RouterResponder<SimulatorContext>>
    /// The port it listens on (`socket: true` only).
    let port: Int
    var token = "dapi-test-token"
    /// The warehouse `execute` sends statements to.
    var warehouseID = Harness.warehouse
    static let warehouse = "0a1b2c3d4e5f6071"

    init(
        workspace: Workspace? = nil, configuration: Simulator.Configuration = .init(rowsPerChunk: 2),
        clock: SimulatorClock = SimulatorClock(), socket: Bool = false
    ) throws {
        sim = try Simulator(workspace: workspace ?? Harness.minimal(), configuration: configuration, clock: clock)
        app = Application(router: sim.makeRouter(), logger: Simulator.silentLogger)
        port = socket ? try sim.start(host: "127.0.0.1", port: 0) : 0
    }

    deinit { sim.stop() }

    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures").appendingPathComponent(name).path
    }

    static func minimal() throws -> Workspace { try Workspace.load(path: fixture("sim-minimal.json")) }

    /// Sends a request with `Authorization: Bearer <token>` (this harness's token unless given; none when it is
    /// empty, or when `authorize` is false).
    func call(
        _ method: String, _ path: String, json: Any? = nil, token: String? = nil, headers: [String: String] = [:],
        authorize: Bool = true
    ) async throws -> Reply {
        var h = headers
        if authorize, let t = token ?? (self.token.isEmpty ? nil : self.token) { h["Authorization"] = "Bearer \(t)" }
        var body: [UInt8]?
        if let json {
            body = Array(try JSONSerialization.data(withJSONObject: json))
            h["Content-Type"] = "application/json"
        }
        return try await send(method, path, headers: h, body: body)
    }

    /// Downloads an external link's file (no `Authorization`, as a client must).
    func download(_ link: String) async throws -> Reply {
        let u = URL(string: link)!
        return try await call("GET", u.path + "?" + u.query!, authorize: false)
    }

    /// Sends exactly `headers` and `body`.
    func send(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]? = nil) async throws
        -> Reply
    {
        if port != 0 { return try TestConnection(port: port).request(method, path, headers: headers, body: body) }
        let fields = HTTPFields(headers.map { HTTPField(name: HTTPField.Name($0.key)!, value: $0.value) })
        let m = HTTPRequest.Method(method)!
        return try await app.test(.router) { client in
            try await client.execute(uri: path, method: m, headers: fields, body: body.map { ByteBuffer(bytes: $0) }) {
                response in
                var headers: [String: String] = [:]
                for f in response.headers { headers[f.name.canonicalName] = f.value }
                return Reply(status: Int(response.status.code), headers: headers, body: Array(buffer: response.body))
            }
        }
    }

    /// POSTs a statement; returns the parsed response body.
    func execute(
        _ sql: String, params: [[String: Any]] = [], extra: [String: Any] = [:], token: String? = nil
    ) async throws -> [String: Any] {
        var body: [String: Any] = ["statement": sql, "warehouse_id": warehouseID, "parameters": params]
        for (k, v) in extra { body[k] = v }
        let r = try await call("POST", "/api/2.0/sql/statements", json: body, token: token)
        guard r.status == 200 else { throw ClientError(description: "HTTP \(r.status): \(r.text)") }
        return r.json
    }

    /// Runs a statement and follows every chunk; returns columns and rows.
    func rows(_ sql: String, params: [[String: Any]] = [], token: String? = nil) async throws -> (columns: [String], rows: [[String?]]) {
        let r = try await execute(sql, params: params, token: token)
        let status = r["status"] as? [String: Any]
        guard status?["state"] as? String == "SUCCEEDED" else {
            throw ClientError(description: "statement not SUCCEEDED: \(r)")
        }
        let manifest = r["manifest"] as! [String: Any]
        let cols = ((manifest["schema"] as! [String: Any])["columns"] as? [[String: Any]] ?? []).map { $0["name"] as! String }
        var out: [[String?]] = []
        var result = r["result"] as! [String: Any]
        while true {
            for row in result["data_array"] as? [[Any]] ?? [] { out.append(row.map { $0 as? String }) }
            guard let link = result["next_chunk_internal_link"] as? String else { break }
            let next = try await call("GET", link, token: token)
            guard next.status == 200 else { throw ClientError(description: "chunk HTTP \(next.status)") }
            result = next.json
        }
        return (cols, out)
    }
}

/// `status.state` of a statement response.
func state(_ r: [String: Any]) -> String? { (r["status"] as? [String: Any])?["state"] as? String }

/// `status.error.message` of a statement response.
func errorMessage(_ r: [String: Any]) -> String? {
    ((r["status"] as? [String: Any])?["error"] as? [String: Any])?["message"] as? String
}

/// The `[CLASS]` of a FAILED statement.
func errorClass(_ r: [String: Any]) -> String? {
    guard let m = errorMessage(r), let open = m.firstIndex(of: "["), let close = m.firstIndex(of: "]") else { return nil }
    return String(m[m.index(after: open)..<close])
}
