import CDFSyncCore
import Foundation
import Synchronization

/// One edit a `tamper` fault makes to a response body: what a broken warehouse or a meddling proxy could send.
///
/// `path` names a place in the body's JSON: object keys and array indexes separated by dots, `[n]` (negative counts
/// from the end) or `[*]` (every element): `result.next_chunk_index`, `manifest.total_row_count`,
/// `external_links[0].next_chunk_internal_link`. `rows` stands for the result's rows wherever this body has them —
/// `result.data_array` of a statement response, `data_array` of a chunk, the whole of an external-link file — so
/// `rows[0][-2]` is the second-to-last value of the first row (a change-data row's `_commit_version`), and
/// `rows[*][0]` the first value of every row. The place gets `value` (any JSON), or the bytes of `raw_hex` as a
/// string's contents (bytes no JSON writer would produce, such as invalid UTF-8), or with `remove` the key goes.
/// A path that names nothing in a body leaves it alone.
public struct Tamper: Sendable, Codable, Equatable {
    public var path: String
    public var value: TamperValue?
    public var rawHex: String?
    public var remove: Bool?

    enum CodingKeys: String, CodingKey {
        case path, value, remove
        case rawHex = "raw_hex"
    }

    public init(path: String, value: TamperValue? = nil, rawHex: String? = nil, remove: Bool? = nil) {
        self.path = path
        self.value = value
        self.rawHex = rawHex
        self.remove = remove
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        rawHex = try c.decodeIfPresent(String.self, forKey: .rawHex)
        remove = try c.decodeIfPresent(Bool.self, forKey: .remove)
        // A present `null` is a value (the place becomes null); an absent key is none.
        value = c.contains(.value) ? try c.decode(TamperValue.self, forKey: .value) : nil
    }
}

/// A JSON scalar a ``Tamper`` puts somewhere.
public enum TamperValue: Sendable, Codable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else {
            self = .string(try c.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        }
    }

    var object: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .integer(let i): return NSNumber(value: i)
        case .number(let d): return d
        case .string(let s): return s
        }
    }
}

extension Simulator {
    /// Whether any `tamper` fault is installed (responses are only read back when one is).
    var hasTamperFaults: Bool { state.withLock { $0.faults.contains { $0.kind == .tamper } } }

    /// A 200 response body `bytes` to `req` as the first matching `tamper` fault edits it (counting the fault down), or
    /// nil when no fault edits it.
    func tampered(_ req: APIRequest, _ bytes: [UInt8]) -> [UInt8]? {
        guard hasTamperFaults else { return nil }
        let sql = statementID(of: req, body: bytes).flatMap { id in state.withLock { $0.statements[id]?.sql } }
        // The first matching fault whose edits name a place in this body; only then is it counted down.
        let candidates = state.withLock { s in s.faults.filter { $0.matches(tampering: req, statementSQL: sql) } }
        for f in candidates {
            guard let edits = f.tamper, let edited = Self.tampered(bytes, edits) else { continue }
            state.withLock { s in
                guard let i = s.faults.firstIndex(where: { $0.id == f.id }), let c = s.faults[i].count else { return }
                if c <= 1 { s.faults.remove(at: i) } else { s.faults[i].count = c - 1 }
            }
            return edited
        }
        return nil
    }

    /// The statement a request is about: from its path, or from the `statement_id` of the response it got.
    private func statementID(of req: APIRequest, body: [UInt8]) -> String? {
        let segs = req.path.split(separator: "/").map(String.init)
        if segs.first == "_blob", segs.count >= 2 { return segs[1] }
        if segs.count >= 5, segs[0...3] == ["api", "2.0", "sql", "statements"] { return segs[4] }
        let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        return object?["statement_id"] as? String
    }

    /// `body` with `edits` made, or nil when it is not JSON or no edit names a place in it.
    static func tampered(_ body: [UInt8], _ edits: [Tamper]) -> [UInt8]? {
        guard var root = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            return nil
        }
        var raw: [(placeholder: String, bytes: [UInt8])] = []
        var changed = false
        for (n, edit) in edits.enumerated() {
            var steps = parse(edit.path)
            // `rows` is wherever this body keeps the result's rows.
            if steps.first == .key("rows") {
                steps.removeFirst()
                if root is [Any] {
                    // An external-link file: the body is the rows.
                } else if let o = root as? [String: Any], o["data_array"] != nil {
                    steps.insert(.key("data_array"), at: 0)
                } else {
                    steps.insert(contentsOf: [.key("result"), .key("data_array")], at: 0)
                }
            }
            let replacement: Any?
            if let hex = edit.rawHex {
                let placeholder = "\u{1}TAMPER\(n)\u{1}"
                raw.append((placeholder, bytes(hex: hex)))
                replacement = placeholder
            } else if edit.remove == true {
                replacement = nil
            } else {
                replacement = edit.value?.object ?? NSNull()
            }
            root = set(root, steps[...], to: replacement, changed: &changed)
        }
        guard changed, var out = try? JSONSerialization.data(withJSONObject: root, options: [.fragmentsAllowed]).map({ $0 })
        else { return nil }
        for (placeholder, bytes) in raw {
            let encoded = Array((try? JSONSerialization.data(withJSONObject: placeholder, options: [.fragmentsAllowed])) ?? Data())
            guard encoded.count > 2, let at = out.firstRange(of: encoded) else { continue }
            out.replaceSubrange(at, with: [UInt8(ascii: "\"")] + bytes + [UInt8(ascii: "\"")])
        }
        return out
    }

    enum Step: Equatable {
        case key(String)
        case index(Int)
        case every
    }

    static func parse(_ path: String) -> [Step] {
        var steps: [Step] = []
        for part in path.split(separator: ".") {
            var name = Substring(part)
            var indexes: [Step] = []
            while let open = name.lastIndex(of: "["), name.hasSuffix("]") {
                let inside = name[name.index(after: open)..<name.index(before: name.endIndex)]
                indexes.insert(inside == "*" ? .every : .index(Int(inside) ?? 0), at: 0)
                name = name[..<open]
            }
            if !name.isEmpty { steps.append(.key(String(name))) }
            steps += indexes
        }
        return steps
    }

    /// `node` with the place `steps` names set to `value` (nil removes an object key); `changed` is set when the
    /// place exists (or is a key of an object that exists).
    static func set(_ node: Any, _ steps: ArraySlice<Step>, to value: Any?, changed: inout Bool) -> Any {
        guard let step = steps.first else {
            changed = true
            return value ?? NSNull()
        }
        let rest = steps.dropFirst()
        switch step {
        case .key(let k):
            guard var o = node as? [String: Any] else { return node }
            if rest.isEmpty {
                o[k] = value
                changed = true
            } else if let child = o[k] {
                o[k] = set(child, rest, to: value, changed: &changed)
            }
            return o
        case .index(let i):
            guard var a = node as? [Any] else { return node }
            let at = i < 0 ? a.count + i : i
            guard at >= 0 && at < a.count else { return node }
            a[at] = set(a[at], rest, to: value, changed: &changed)
            return a
        case .every:
            guard let a = node as? [Any] else { return node }
            return a.map { set($0, rest, to: value, changed: &changed) }
        }
    }

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var chars = Array(hex.utf8)
        if chars.count % 2 == 1 { chars.insert(UInt8(ascii: "0"), at: 0) }
        var i = 0
        while i + 1 < chars.count {
            if let b = UInt8(String(decoding: chars[i...i + 1], as: UTF8.self), radix: 16) { out.append(b) }
            i += 2
        }
        return out
    }
}
