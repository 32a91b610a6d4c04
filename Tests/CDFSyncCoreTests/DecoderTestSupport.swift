import Testing
@testable import CDFSyncCore

/// What a decoder produced for one body: rows as optional strings plus the metadata bytes.
struct DecodedBody: Equatable {
    var rows: [[String?]]
    var metadata: [UInt8]
    var metadataText: String { String(decoding: metadata, as: UTF8.self) }
}

/// Decodes `body` fed in pieces that end at each offset in `cuts` (sorted, within 0...body.count).
func decode(
    _ body: [UInt8], layout: ResultStreamDecoder.Layout = .envelope, expectedColumnCount: Int? = nil,
    cuts: [Int] = []
) throws -> DecodedBody {
    var decoder = ResultStreamDecoder(layout: layout, expectedColumnCount: expectedColumnCount)
    var rows: [[String?]] = []
    var start = 0
    for end in cuts + [body.count] {
        try body[start..<end].withUnsafeBytes { piece in
            try decoder.feed(piece) { row in rows.append(row.strings()) }
        }
        start = end
    }
    let metadata = try decoder.finish()
    #expect(decoder.rowCount == rows.count)
    #expect(decoder.bytesConsumed == body.count)
    return DecodedBody(rows: rows, metadata: metadata)
}

func decode(_ text: String, layout: ResultStreamDecoder.Layout = .envelope, expectedColumnCount: Int? = nil,
            cuts: [Int] = []) throws -> DecodedBody {
    try decode(Array(text.utf8), layout: layout, expectedColumnCount: expectedColumnCount, cuts: cuts)
}

/// Decodes `body` one byte per feed.
func decodeByteByByte(_ body: [UInt8], layout: ResultStreamDecoder.Layout = .envelope) throws -> DecodedBody {
    try decode(body, layout: layout, cuts: Array(0..<body.count))
}

/// The error thrown decoding `text` (all at once, or at `cuts`), or nil.
func decodingError(_ text: String, layout: ResultStreamDecoder.Layout = .envelope, expectedColumnCount: Int? = nil,
                   cuts: [Int] = []) -> JSONArrayDecodingError? {
    do {
        _ = try decode(text, layout: layout, expectedColumnCount: expectedColumnCount, cuts: cuts)
        return nil
    } catch let e as JSONArrayDecodingError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// A small deterministic PRNG (SplitMix64) so property tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
