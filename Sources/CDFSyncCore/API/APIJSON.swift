#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes the small metadata bodies of the API (never row data) with `JSONDecoder`.
public enum APIJSON {
    /// Decodes `type` from UTF-8 JSON bytes, e.g. the metadata returned by ``ResultStreamDecoder/finish()``.
    ///
    /// - Throws: `DecodingError` when the bytes are not valid JSON of that shape.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }

    /// Encodes `value` as compact JSON bytes with sorted keys (for simulators and tests).
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }
}
