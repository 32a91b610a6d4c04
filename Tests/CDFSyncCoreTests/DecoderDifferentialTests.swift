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
