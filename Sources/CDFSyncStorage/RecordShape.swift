import Foundation
import Synchronization
import CDFSyncCore

/// A record stored without its JSON key names.
///
/// Most of a participant record's bytes are its key names (`"participant_id":`, `"consent_status":` …), and
/// every record of a pipeline repeats the same ones in the same order. So `panel` stores such a record as
/// *shaped*: a tag byte, the id of its **shape** (the list of its top-level keys, kept once in the `shapes`
/// database) and its top-level values, separated by ``separator``. Reading joins keys and values back into the
/// exact bytes that were given (`join(split(r)) == r`, byte for byte), so hashes, exports and outbox lines see
/// the same record as before. On the benchmark table this is ~40 % fewer record bytes, and the commits write
/// that much less (docs/benchmarks.md).
///
/// ``split(_:keys:values:)`` accepts only what it can give back exactly: an object `{…}` with at least one
/// member, no whitespace between tokens and no raw byte below 0x20 anywhere (inside a JSON string those are
/// invalid anyway), so the separator can never occur in a value. Anything else is stored as it is.
enum RecordShape {
    /// The byte between two values of a shaped record (a control byte: never part of a value, see above).
    static let separator: UInt8 = 0x1F
    /// The first byte of a shaped panel record (a plain one starts with `{`, a zstd frame with `0x28`).
    static let tag: UInt8 = 0x01
    /// Tag and the 4-byte big-endian shape id.
    static let headerCount = 5
    /// At most this many shapes per store; records of further shapes are stored as they are.
    static let maxShapes: UInt32 = 4096

    /// A shape id in its 4-byte big-endian form (the `shapes` key; bytes 1–4 of a shaped record).
    static func idBytes(_ id: UInt32) -> [UInt8] { withUnsafeBytes(of: id.bigEndian) { Array($0) } }

    /// The shape id in the first 4 bytes of `bytes` (big-endian).
    static func id(_ bytes: UnsafeRawBufferPointer) -> UInt32 { UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self)) }

    /// Writes `record`'s values to `out` (room for `record.count` bytes always suffices), separated by
    /// ``separator``, and returns how many bytes that took and whether the record's keys are exactly `keys` (a
    /// shape's saved form); `nil` when the record is not one that joins back byte for byte (see the type).
    /// ``keys(of:)`` gives the keys of a record whose keys did not match.
    static func split(
        _ record: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer, comparingKeys keys: UnsafeRawBufferPointer
    ) -> (count: Int, keysMatch: Bool)? {
        let n = record.count
        guard n > 2, let r = record.baseAddress?.assumingMemoryBound(to: UInt8.self), r[0] == UInt8(ascii: "{"),
            r[n - 1] == UInt8(ascii: "}")
        else { return nil }
        let o = out.assumingMemoryBound(to: UInt8.self)
        var written = 0
        var keysMatch = true
        var k = 0  // position in `keys`
        var i = 1
        while true {
            guard i < n, r[i] == UInt8(ascii: "\""), let keyEnd = endOfString(r, n, i), keyEnd - i <= 0xFFFF,
                keyEnd < n, r[keyEnd] == UInt8(ascii: ":")
            else { return nil }
            if keysMatch {
                let length = keyEnd - i
                if k + 2 + length <= keys.count, Int(keys[k]) << 8 | Int(keys[k + 1]) == length,
                    memcmp(keys.baseAddress! + k + 2, r + i, length) == 0
                {
                    k += 2 + length
                } else {
                    keysMatch = false
                }
            }
            let valueStart = keyEnd + 1
            guard let valueEnd = endOfValue(r, n, valueStart), valueEnd < n else { return nil }
            if written > 0 {
                o[written] = separator
                written += 1
            }
            copy(o + written, r + valueStart, valueEnd - valueStart)
            written += valueEnd - valueStart
            if r[valueEnd] == UInt8(ascii: ",") {
                i = valueEnd + 1
            } else if r[valueEnd] == UInt8(ascii: "}") && valueEnd == n - 1 {
                return (written, keysMatch && k == keys.count)
            } else {
                return nil
            }
        }
    }

    /// Copies `n` bytes; short values (most of them) without a call (``UnsafeMutableRawPointer/copyShort(from:count:)``).
    @inline(__always)
    private static func copy(_ dst: UnsafeMutablePointer<UInt8>, _ src: UnsafePointer<UInt8>, _ n: Int) {
        UnsafeMutableRawPointer(dst).copyShort(from: src, count: n)
    }

    /// The keys of a record ``split(_:into:comparingKeys:)`` accepts, in a shape's saved form: each key as written
    /// (quotes included) after its length (2 bytes big-endian).
    static func keys(of record: UnsafeRawBufferPointer) -> [UInt8] {
        var keys: [UInt8] = []
        let n = record.count
        guard n > 2, let r = record.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return keys }
        var i = 1
        while i < n, r[i] == UInt8(ascii: "\""), let keyEnd = endOfString(r, n, i),
            let valueEnd = endOfValue(r, n, keyEnd + 1)
        {
            ShapeKeys.append(UnsafeBufferPointer(start: r + i, count: keyEnd - i), to: &keys)
            i = valueEnd + 1
        }
        return keys
    }

    /// The index after the string that starts (with its quote) at `start`, or `nil` (unterminated, or a raw
    /// control byte, also right after a backslash).
    @inline(__always)
    private static func endOfString(_ r: UnsafePointer<UInt8>, _ n: Int, _ start: Int) -> Int? {
        var i = start + 1
        // Eight bytes at a time to the first quote, backslash or control byte (the SWAR "has zero byte" test on
        // x ^ quotes, x ^ backslashes, and "has byte below 0x20"; bits above the first hit may be false, the
        // first is exact).
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while i + 8 <= n {
            let x = UInt64(littleEndian: UnsafeRawPointer(r + i).loadUnaligned(as: UInt64.self))
            let q = x ^ (ones &* 0x22)
            let b = x ^ (ones &* 0x5C)
            let hits = ((q &- ones) & ~q | (b &- ones) & ~b | (x &- ones &* 0x20) & ~x) & highs
            if hits != 0 {
                i += hits.trailingZeroBitCount >> 3
                break
            }
            i += 8
        }
        while i < n {
            let c = r[i]
            if c == UInt8(ascii: "\"") { return i + 1 }
            if c < 0x20 { return nil }
            if c == UInt8(ascii: "\\") {
                guard i + 1 < n, r[i + 1] >= 0x20 else { return nil }
                i += 2
            } else {
                i += 1
            }
        }
        return nil
    }

    /// The index after the value that starts at `start`: a string, a balanced object or array (strings inside it
    /// skipped), or a scalar running to the next `,` or `}`; `nil` for an empty value, whitespace or a control byte.
    @inline(__always)
    private static func endOfValue(_ r: UnsafePointer<UInt8>, _ n: Int, _ start: Int) -> Int? {
        guard start < n else { return nil }
        let c = r[start]
        if c == UInt8(ascii: "\"") { return endOfString(r, n, start) }
        var i = start
        if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
            var depth = 0
            while i < n {
                let b = r[i]
                if b == UInt8(ascii: "\"") {
                    guard let e = endOfString(r, n, i) else { return nil }
                    i = e
                    continue
                }
                if b <= 0x20 { return nil }
                if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") {
                    depth += 1
                } else if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                    depth -= 1
                    if depth == 0 { return i + 1 }
                }
                i += 1
            }
            return nil
        }
        while i < n {
            let b = r[i]
            if b == UInt8(ascii: ",") || b == UInt8(ascii: "}") { break }
            if b <= 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "{") || b == UInt8(ascii: "[")
                || b == UInt8(ascii: "]")
            {
                return nil
            }
            i += 1
        }
        return i > start ? i : nil
    }

    /// The length of the record that `keys` (a shape's saved form) and `valuesCount` bytes of values stand for
    /// (`{`, each key with its `:`, a `,` where the values have a separator, `}`), or `nil` for a malformed key list.
    static func joinedCount(keys: UnsafeRawBufferPointer, valuesCount: Int) -> Int? {
        var k = 0
        var n = 0
        while k < keys.count {
            guard k + 2 <= keys.count else { return nil }
            k += 2 + (Int(keys[k]) << 8 | Int(keys[k + 1]))
            n += 1
        }
        guard k == keys.count, n > 0 else { return nil }
        return 2 + keys.count - n + valuesCount
    }

    /// Writes the record that `keys` and `values` stand for at `out`, which has room for
    /// ``joinedCount(keys:valuesCount:)`` bytes, and returns its length; `nil` when they do not fit together (a
    /// different number of keys and values, a truncated key), having written no more than that room.
    static func join(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer) -> Int? {
        let o = out.assumingMemoryBound(to: UInt8.self)
        o[0] = UInt8(ascii: "{")
        var w = 1
        var k = 0
        var v = 0
        while k < keys.count {
            guard k + 2 <= keys.count else { return nil }
            let length = Int(keys[k]) << 8 | Int(keys[k + 1])
            guard length >= 2, k + 2 + length <= keys.count, v <= values.count else { return nil }
            if k > 0 {
                o[w] = UInt8(ascii: ",")
                w += 1
            }
            (o + w).update(from: keys.baseAddress!.assumingMemoryBound(to: UInt8.self) + k + 2, count: length)
            w += length
            o[w] = UInt8(ascii: ":")
            w += 1
            k += 2 + length
            let rest = UnsafeRawBufferPointer(rebasing: values[v...])
            let end: Int
            if let base = rest.baseAddress, let hit = memchr(base, Int32(separator), rest.count) {
                end = v + base.distance(to: UnsafeRawPointer(hit))
            } else {
                end = values.count
            }
            guard end > v else { return nil }
            // The last key takes the rest; a separator left over means more values than keys.
            if k == keys.count && end != values.count { return nil }
            if k < keys.count && end == values.count { return nil }
            copy(o + w, values.baseAddress!.assumingMemoryBound(to: UInt8.self) + v, end - v)
            w += end - v
            v = end + 1
        }
        guard k > 0 else { return nil }
        o[w] = UInt8(ascii: "}")
        return w + 1
    }

    /// Appends the record that `keys` (a shape's saved form) and `values` (a shaped record's values) stand for.
    /// Returns `false`, leaving `out` as it was, when they do not fit together.
    static func join(keys: UnsafeRawBufferPointer, values: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        guard let count = joinedCount(keys: keys, valuesCount: values.count) else { return false }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        let written = out.withUnsafeMutableBytes { join(keys: keys, values: values, to: $0.baseAddress! + start) }
        guard written == count else {
            out.removeSubrange(start...)
            return false
        }
        return true
    }
}


/// The shapes of shaped records (`shapes`: 4-byte big-endian id → the keys in ``RecordShape``'s saved form),
/// held in memory both ways. Ids are handed out inside the write transaction that first stores a record of the
/// shape and become visible here only after it commits, so an aborted batch leaves no id behind.
///
/// Thread-safety: the maps are behind a mutex (readers on any thread, the one writer).
final class RecordShapes: Sendable {
    private let maps = Mutex<(byID: [UInt32: [UInt8]], byKeys: [[UInt8]: UInt32])>(([:], [:]))

    /// The id of the shape with these keys, if known to this process.
    func id(keys: [UInt8]) -> UInt32? {
        maps.withLock { $0.byKeys[keys] }
    }

    /// The keys of shape `id`, if known to this process.
    func keys(id: UInt32) -> [UInt8]? {
        maps.withLock { $0.byID[id] }
    }

    /// Records shapes committed to `shapes` (at open, after a commit, or found by a reader).
    func add(id: UInt32, keys: [UInt8]) {
        maps.withLock {
            $0.byID[id] = keys
            $0.byKeys[keys] = id
        }
    }
}
