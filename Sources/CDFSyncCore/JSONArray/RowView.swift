/// One decoded JSON_ARRAY row: a view into the decoder's scratch buffer.
///
/// Values are already unescaped UTF-8 bytes. Field `i` is either SQL NULL (JSON `null`) or a byte range;
/// an empty string is a zero-length range, not NULL.
///
/// - Important: A `RowView` is valid only during the `onRow` call that received it. The decoder reuses its
///   buffer for the next row, so never store the view or a pointer obtained from ``withValue(_:_:)``;
///   copy what you need (for example with ``string(_:)`` or ``bytes(_:)``).
public struct RowView {
    /// Start of the row's value bytes (nil only when the buffer has never been allocated).
    @usableFromInline let base: UnsafeRawPointer?
    /// `ends[i]` is the end offset of field `i`; a NULL field stores `~end` (negative).
    @usableFromInline let ends: UnsafePointer<Int>
    /// Number of fields in the row.
    public let count: Int
    /// Whether no value of the row was written with a JSON escape. Then no value contains a quote, a backslash
    /// or a control byte (the decoder rejects raw control bytes), so each value's bytes are also its escaped
    /// JSON spelling, and a writer may copy them between quotes without scanning.
    public let isVerbatim: Bool

    @inlinable
    init(base: UnsafeRawPointer?, ends: UnsafePointer<Int>, count: Int, isVerbatim: Bool = false) {
        self.base = base
        self.ends = ends
        self.count = count
        self.isVerbatim = isVerbatim
    }

    @inlinable
    func bounds(_ i: Int) -> (start: Int, end: Int, isNull: Bool) {
        precondition(i >= 0 && i < count, "RowView index \(i) out of range 0..<\(count)")
        let e = ends[i]
        let start: Int
        if i == 0 {
            start = 0
        } else {
            let p = ends[i - 1]
            start = p >= 0 ? p : ~p
        }
        return e >= 0 ? (start, e, false) : (start, ~e, true)
    }

    /// Whether field `i` is SQL NULL.
    @inlinable
    public func isNull(_ i: Int) -> Bool {
        bounds(i).isNull
    }

    /// Lends the unescaped UTF-8 bytes of field `i` to `body`.
    ///
    /// - Returns: `body`'s result, or nil when the field is NULL (`body` is not called).
    /// - Important: The buffer must not escape `body`.
    @inlinable
    public func withValue<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        let (start, end, isNull) = bounds(i)
        if isNull { return nil }
        guard let base else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base + start, count: end - start))
    }

    /// Field `i` as a `String` (invalid UTF-8 is repaired with U+FFFD), or nil when NULL.
    ///
    /// Allocates; prefer ``withValue(_:_:)`` for values that are only inspected.
    public func string(_ i: Int) -> String? {
        withValue(i) { String(decoding: $0, as: UTF8.self) }
    }

    /// Field `i` as a byte array, or nil when NULL.
    public func bytes(_ i: Int) -> [UInt8]? {
        withValue(i) { Array($0) }
    }

    /// Field `i` parsed as a base-10 `Int64` (optional leading `-` or `+`, ASCII digits only).
    ///
    /// - Returns: nil when the field is NULL, empty, not all digits, or out of range. Use ``isNull(_:)`` to tell
    ///   NULL apart from text that is not an integer.
    @inlinable
    public func int64(_ i: Int) -> Int64? {
        let r: Int64?? = withValue(i) { buf -> Int64? in
            let n = buf.count
            guard n > 0 else { return nil }
            var k = 0
            var negative = false
            let first = buf[0]
            if first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
                negative = first == UInt8(ascii: "-")
                k = 1
                guard n > 1 else { return nil }
            }
            // Accumulate negatively so Int64.min parses.
            var value: Int64 = 0
            while k < n {
                let d = buf[k] &- 0x30
                guard d < 10 else { return nil }
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.subtractingReportingOverflow(Int64(d))
                if o1 || o2 { return nil }
                value = s
                k += 1
            }
            if negative { return value }
            let (pos, o) = (0 as Int64).subtractingReportingOverflow(value)
            return o ? nil : pos
        }
        return r ?? nil
    }

    /// All fields as optional strings (allocates; meant for tests and diagnostics).
    public func strings() -> [String?] {
        (0..<count).map { string($0) }
    }
}

@available(*, unavailable, message: "RowView points into a decoder's scratch buffer and is valid only during onRow")
extension RowView: Sendable {}
