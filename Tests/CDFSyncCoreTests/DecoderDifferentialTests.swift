import CDFSyncCore
import Foundation
import Testing

/// What a reference JSON parser says a bare-array body should decode to, or nil when it must be rejected.
///
/// Foundation's parser accepts trailing commas (`[1,]`), which RFC 8259 forbids; those bodies are rejected here.
private func reference(_ body: [UInt8]) -> [[String?]]? {
    guard !hasTrailingComma(body) else { return nil }
    guard let any = try? JSONSerialization.jsonObject(with: Data(body)), let rows = any as? [Any] else { return nil }
    var out: [[String?]] = []
    for row in rows {
        guard let values = row as? [Any] else { return nil }
        var r: [String?] = []
        for v in values {
            if v is NSNull {
                r.append(nil)
            } else if let s = v as? String, !(v is NSNumber) {
                r.append(s)
            } else {
                return nil
            }
        }
        if let first = out.first, first.count != r.count { return nil }
        out.append(r)
    }
    return out
}

/// Whether a `,` outside strings is followed (after whitespace) by `]` or `}`.
private func hasTrailingComma(_ b: [UInt8]) -> Bool {
    var inString = false, escaped = false
    for (i, c) in b.enumerated() {
        if inString {
            if escaped { escaped = false } else if c == 0x5C { escaped = true } else if c == 0x22 { inString = false }
            continue
        }
        if c == 0x22 { inString = true; continue }
        if c == 0x2C {
            var j = i + 1
            while j < b.count, b[j] == 0x20 || b[j] == 0x0A || b[j] == 0x0D || b[j] == 0x09 { j += 1 }
            if j < b.count, b[j] == 0x5D || b[j] == 0x7D { return true }
        }
    }
    return false
}

@Suite("ResultStreamDecoder: differential against JSONSerialization")
struct DecoderDifferentialTests {
    /// Random valid bodies with random byte mutations: the decoder must accept exactly what the reference
    /// parser accepts (with the JSON_ARRAY shape rules) and produce the same rows, at a random split.
    @Test func mutatedBodiesAgreeWithReference() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let interesting = Array("[],\"\\ nul0123456789tfe.-{}:/bru\u{7F}".utf8) + [0x00, 0x0A, 0x1F, 0x09]
        var accepted = 0, rejected = 0
        for iteration in 0..<3000 {
            let columns = Int.random(in: 1...4, using: &rng)
            let rows = (0..<Int.random(in: 0...4, using: &rng)).map { _ in
                (0..<columns).map { _ in randomValue(&rng) }
            }
            var body = Array(serialise(rows, envelope: false, rng: &rng).utf8)
            for _ in 0..<Int.random(in: 0...3, using: &rng) where !body.isEmpty {
                let at = Int.random(in: 0..<body.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: body[at] = interesting.randomElement(using: &rng)!
                case 1: body.remove(at: at)
                default: body.insert(interesting.randomElement(using: &rng)!, at: at)
                }
            }
            // The decoder passes raw bytes through without UTF-8 validation; the reference rejects invalid UTF-8.
            guard String(validating: body, as: UTF8.self) != nil else { continue }
            let expected = reference(body)
            let cut = Int.random(in: 0...body.count, using: &rng)
            let got = try? decode(body, layout: .bareArray, cuts: [cut])
            if expected?.map({ $0 }) != got?.rows {
                Issue.record("iteration \(iteration): reference \(String(describing: expected)) decoder \(String(describing: got?.rows)) body \(String(decoding: body, as: UTF8.self).debugDescription)")
            }
            if expected == nil { rejected += 1 } else { accepted += 1 }
        }
        // Both outcomes must be well represented for the test to mean something.
        #expect(accepted > 300 && rejected > 300, "accepted \(accepted), rejected \(rejected)")
    }
}

/// Rows and metadata a reference parser expects from an envelope body, or nil when it must be rejected.
private func referenceEnvelope(_ body: [UInt8]) -> (rows: [[String?]], metadata: NSDictionary)? {
    guard !hasTrailingComma(body),
        let any = try? JSONSerialization.jsonObject(with: Data(body)), let top = any as? [String: Any]
    else { return nil }
    var meta = top
    var rows: [[String?]] = []
    func take(_ value: Any?) -> Bool {
        guard let value else { return true }
        if value is NSNull { return true }
        guard let array = value as? [Any] else { return false }
        for row in array {
            guard let values = row as? [Any] else { return false }
            var r: [String?] = []
            for v in values {
                if v is NSNull { r.append(nil) } else if let s = v as? String, !(v is NSNumber) { r.append(s) } else { return false }
            }
            if let first = rows.first, first.count != r.count { return false }
            rows.append(r)
        }
        return true
    }
    guard take(top["data_array"]) else { return nil }
    meta["data_array"] = nil
    if var result = top["result"] as? [String: Any] {
        guard take(result["data_array"]) else { return nil }
        result["data_array"] = nil
        meta["result"] = result
    }
    return (rows, meta as NSDictionary)
}

/// Whether the text has an exponent of three or more digits (`1e+623`).
private func hasHugeExponent(_ b: [UInt8]) -> Bool {
    var i = 0
    while i < b.count {
        if b[i] == 0x65 || b[i] == 0x45 {
            var j = i + 1
            if j < b.count, b[j] == 0x2B || b[j] == 0x2D { j += 1 }
            var n = 0
            while j < b.count, b[j] >= 0x30 && b[j] <= 0x39 { n += 1; j += 1 }
            if n >= 3 { return true }
        }
        i += 1
    }
    return false
}

private func randomJSONValue(_ rng: inout SplitMix64, depth: Int = 0) -> String {
    switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &rng) {
    case 0: return ["0", "-0", "12", "-3.25", "1e5", "2E-3", "6.02e+23", "-0.0"].randomElement(using: &rng)!
    case 1: return ["true", "false", "null"].randomElement(using: &rng)!
    case 2, 3:
        return serialise([[randomValue(&rng) ?? "s"]], envelope: false, rng: &rng)
            .drop { $0 != "\"" }.dropLast(3).description.trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "]", with: "", options: .anchored) + ""
    case 4:
        let n = Int.random(in: 0...3, using: &rng)
        return "[" + (0..<n).map { _ in randomJSONValue(&rng, depth: depth + 1) }.joined(separator: ",") + "]"
    default:
        let keys = ["a", "data_array", "result", "data_array_x", "k\\\"q", "n"]
        let n = Int.random(in: 0...3, using: &rng)
        return "{" + Set((0..<n).map { _ in keys.randomElement(using: &rng)! }).sorted().map {
            "\"\($0)\":" + randomJSONValue(&rng, depth: depth + 1)
        }.joined(separator: ",") + "}"
    }
}

extension DecoderDifferentialTests {
    /// Random envelopes (data_array at the top level or under result, among random members) with random
    /// mutations: accepted exactly when the reference accepts, with the same rows and metadata.
    @Test func mutatedEnvelopesAgreeWithReference() throws {
        var rng = SplitMix64(seed: 0xE4E1)
        let interesting = Array("[],\"\\ nul0123456789tfe.-+{}:/bruE".utf8) + [0x00, 0x0A, 0x09]
        var accepted = 0, rejected = 0
        for iteration in 0..<3000 {
            let columns = Int.random(in: 1...3, using: &rng)
            let rows = (0..<Int.random(in: 0...3, using: &rng)).map { _ in (0..<columns).map { _ in randomValue(&rng) } }
            let dataArray = "\"data_array\":" + serialise(rows, envelope: false, rng: &rng)
            var resultMembers = (0..<Int.random(in: 0...3, using: &rng)).map { "\"m\($0)\":" + randomJSONValue(&rng) }
            var topMembers = (0..<Int.random(in: 0...3, using: &rng)).map { "\"t\($0)\":" + randomJSONValue(&rng) }
            if Bool.random(using: &rng) {
                resultMembers.insert(dataArray, at: Int.random(in: 0...resultMembers.count, using: &rng))
            } else {
                topMembers.insert(dataArray, at: Int.random(in: 0...topMembers.count, using: &rng))
            }
            topMembers.insert("\"result\":{" + resultMembers.joined(separator: ",") + "}",
                              at: Int.random(in: 0...topMembers.count, using: &rng))
            var body = Array(("{" + topMembers.joined(separator: ",") + "}").utf8)
            for _ in 0..<Int.random(in: 0...2, using: &rng) where !body.isEmpty {
                let at = Int.random(in: 0..<body.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: body[at] = interesting.randomElement(using: &rng)!
                case 1: body.remove(at: at)
                default: body.insert(interesting.randomElement(using: &rng)!, at: at)
                }
            }
            guard String(validating: body, as: UTF8.self) != nil else { continue }
            // Foundation rejects numbers beyond Double's range (valid JSON); leave those out.
            guard !hasHugeExponent(body) else { continue }
            let expected = referenceEnvelope(body)
            let cut = Int.random(in: 0...body.count, using: &rng)
            let got = try? decode(body, layout: .envelope, cuts: [cut])
            let gotMeta = got.flatMap { try? JSONSerialization.jsonObject(with: Data($0.metadata)) as? NSDictionary }
            if expected?.rows != got?.rows || expected?.metadata != gotMeta {
                Issue.record("iteration \(iteration): reference \(String(describing: expected)) decoder \(String(describing: got?.rows)) \(String(describing: got?.metadataText)) body \(String(decoding: body, as: UTF8.self).debugDescription)")
            }
            if expected == nil { rejected += 1 } else { accepted += 1 }
        }
        #expect(accepted > 300 && rejected > 300, "accepted \(accepted), rejected \(rejected)")
    }
}
