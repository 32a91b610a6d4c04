/// A resumable, streaming decoder for Statement Execution API `JSON_ARRAY` bodies.
///
/// Bytes may arrive in pieces split at any byte (inside a string, an escape, a multi-byte UTF-8 sequence,
/// `null`, or a key). The decoder is a state machine over raw bytes: it never buffers the body, never builds a
/// `String` per value, and reuses one scratch buffer for the values of the current row, so steady-state
/// decoding does not allocate.
///
/// Two layouts are supported:
/// - ``Layout/envelope``: a JSON object, either a statement response (`{"statement_id":…,"result":{…,
///   "data_array":[[…]]}}`) or a chunk response (`{"chunk_index":…,"data_array":[[…]]}`). Rows come from
///   `data_array`, found either at the top level or inside the top-level `result` object; every other member
///   is copied (compacted) into a small metadata buffer that ``finish()`` returns, for `JSONDecoder`.
/// - ``Layout/bareArray``: an `EXTERNAL_LINKS` JSON_ARRAY file, `[[…],[…]]`.
///
/// ```swift
/// var decoder = ResultStreamDecoder(layout: .envelope, expectedColumnCount: 3)
/// try decoder.feed(piece) { row in handle(row) }   // as often as bytes arrive
/// let metadata = try decoder.finish()               // JSON object without data_array
/// let response = try JSONDecoder().decode(StatementResponse.self, from: Data(metadata))
/// ```
///
/// Guarantees: rows are delivered in order, once each; every value is a JSON string (unescaped, including
/// `\uXXXX` surrogate pairs) or `null`; all rows of a body have the same number of values (and the expected
/// count, when set); every row's values are valid UTF-8 (a row that is not fails the body); the whole body is
/// syntactically valid JSON once ``finish()`` returns. Keys are compared without unescaping, so a key spelled
/// with escapes (`"data\u005farray"`) is not recognised as `data_array`.
///
/// - Important: Not thread-safe to share; use one decoder per body. After any thrown error, or an error
///   thrown by `onRow`, the decoder is spent and keeps throwing.
public struct ResultStreamDecoder: Sendable {
    /// The outer shape of the body.
    public enum Layout: Sendable, Hashable {
        /// A JSON object (statement or chunk response); `data_array` may be absent.
        case envelope
        /// A bare JSON array of rows, as served by an `EXTERNAL_LINKS` link.
        case bareArray
    }

    /// The layout given at creation.
    public let layout: Layout
    /// Rows emitted so far.
    public private(set) var rowCount: Int = 0
    /// Total bytes fed so far.
    public private(set) var bytesConsumed: Int = 0
    /// The number of values every row must have, when known.
    public private(set) var expectedColumnCount: Int?

    private var storage: ScratchStorage
    private var state: State
    private var failure: JSONArrayDecodingError?
    private var finished = false
    /// The value count of the first row of this body; later rows must match.
    private var bodyColumnCount: Int?

    // String escape state (row values).
    private var hexCount: Int = 0
    private var hexValue: UInt32 = 0
    private var highSurrogate: UInt32 = 0
    private var literalMatched: Int = 0
    /// Whether a value of the row being decoded had an escape (see `RowView.isVerbatim`).
    private var escapeInRow = false

    // Envelope state.
    private var metadata: [UInt8] = []
    private var containers: [Container] = []
    private var memberStart: Int = 0
    private var keyStart: Int = 0
    private var skippingDataArray = false
    private var nextObjectIsResult = false
    private var literal: [UInt8] = []
    private var numberPhase: NumberPhase = .start
    private var envEscapeInKey = false

    /// Creates a decoder for one body.
    ///
    /// - Parameters:
    ///   - layout: The outer shape of the body.
    ///   - expectedColumnCount: When set, a row with a different number of values is an error.
    public init(layout: Layout, expectedColumnCount: Int? = nil) {
        self.layout = layout
        self.expectedColumnCount = expectedColumnCount
        self.storage = ScratchStorage()
        self.state = layout == .envelope ? .envStart : .bareStart
        if layout == .envelope { metadata.reserveCapacity(1024) }
    }

    /// Sets or clears the number of values every row must have (applies to rows not yet completed).
    public mutating func setExpectedColumnCount(_ n: Int?) {
        expectedColumnCount = n
    }

    /// Feeds the next bytes of the body.
    ///
    /// Calls `onRow` once per complete row, in order. The ``RowView`` is valid only during the call.
    ///
    /// - Parameters:
    ///   - bytes: The next piece of the body, of any length (empty is allowed).
    ///   - onRow: Receives each completed row.
    /// - Throws: ``JSONArrayDecodingError`` for malformed input, or whatever `onRow` throws. Either way the
    ///   decoder cannot be used further.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, onRow: (borrowing RowView) throws -> Void) throws {
        try feed(bytes, onRowsBegin: { _ in }, onRow: onRow)
    }

    /// Feeds the next bytes, also reporting the envelope read so far when `data_array` begins.
    ///
    /// In a statement response the server sends `statement_id`, `status` and `manifest` before `result`, so
    /// `onRowsBegin` receives them (as a valid JSON object: everything before `data_array`, with the open objects
    /// closed) before the first row: decode it as ``StatementResponse`` to learn the schema without buffering
    /// rows. It is called once per `data_array` found, only for ``Layout/envelope``, and never when the body
    /// has no `data_array`. ``finish()`` still returns the complete metadata.
    ///
    /// - Parameters:
    ///   - bytes: The next piece of the body.
    ///   - onRowsBegin: Receives the partial envelope (JSON object bytes) when `data_array`'s `[` is read.
    ///   - onRow: Receives each completed row; the ``RowView`` is valid only during the call.
    /// - Throws: ``JSONArrayDecodingError`` for malformed input, or whatever a callback throws.
    public mutating func feed(
        _ bytes: UnsafeRawBufferPointer, onRowsBegin: ([UInt8]) throws -> Void,
        onRow: (borrowing RowView) throws -> Void
    ) throws {
        if let failure { throw failure }
        if finished {
            throw fail("bytes fed after finish()", at: bytesConsumed)
        }
        guard let p = bytes.baseAddress, bytes.count > 0 else { return }
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        let s = storage
        let n = bytes.count
        let base = bytesConsumed
        bytesConsumed = base + n
        var i = 0
        var state = self.state
        // Hot values live in locals; they are written back on every exit.
        var sb = s.bytes
        var sc = s.count
        var scap = s.capacity
        var ends = s.ends
        var fc = s.fieldCount
        var ecap = s.endsCapacity
        defer {
            self.state = state
            s.count = sc
            s.fieldCount = fc
        }
        do {
            while i < n {
                switch state {
                // MARK: Row-mode states (the hot path)
                case .string:
                    // Fast path: find the next '"', '\' or control byte, 8 bytes at a time.
                    var j = i
                    var found = false
                    while j &+ 8 <= n {
                        let w = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: j, as: UInt64.self))
                        let m = Self.specialMask(w)
                        if m != 0 {
                            j &+= m.trailingZeroBitCount &>> 3
                            found = true
                            break
                        }
                        j &+= 8
                    }
                    if !found {
                        while j < n {
                            let c = p.load(fromByteOffset: j, as: UInt8.self)
                            if c == 0x22 || c == 0x5C || c < 0x20 { found = true; break }
                            j &+= 1
                        }
                    }
                    let len = j &- i
                    if len > 0 {
                        if sc &+ len > scap {
                            s.count = sc
                            s.reserveBytes(sc + len)
                            sb = s.bytes
                            scap = s.capacity
                        }
                        (sb + sc).copyShort(from: p + i, count: len)
                        sc &+= len
                    }
                    i = j
                    if !found { break }
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    if c == 0x22 {
                        // End of value.
                        if fc == ecap {
                            s.fieldCount = fc
                            s.reserveFields(fc + 1)
                            ends = s.ends
                            ecap = s.endsCapacity
                        }
                        ends[fc] = sc
                        fc &+= 1
                        i &+= 1
                        // Fast path for the common `,"` between values.
                        if i &+ 1 < n && p.load(fromByteOffset: i, as: UInt8.self) == 0x2C
                            && p.load(fromByteOffset: i &+ 1, as: UInt8.self) == 0x22
                        {
                            i &+= 2
                            state = .string
                        } else {
                            state = .afterValue
                        }
                    } else if c == 0x5C {
                        i &+= 1
                        state = .escape
                        escapeInRow = true
                    } else {
                        throw fail("unescaped control character 0x\(Self.hex(c)) in a string", at: base + i)
                    }

                case .afterValue:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    if c == 0x2C {
                        i &+= 1
                        state = .valueExpected
                    } else if c == 0x5D {
                        try endRow(fc: fc, at: base + i, sb: sb, ends: ends, onRow: onRow)
                        i &+= 1
                        state = .afterRow
                        // Fast path for `,[` between rows.
                        if i &+ 1 < n && p.load(fromByteOffset: i, as: UInt8.self) == 0x2C
                            && p.load(fromByteOffset: i &+ 1, as: UInt8.self) == 0x5B
                        {
                            i &+= 2
                            sc = 0
                            fc = 0
                            state = .rowStart
                        }
                    } else if Self.isWhitespace(c) {
                        i &+= 1
                    } else {
                        throw fail("expected ',' or ']' after a value, found \(Self.describe(c))", at: base + i)
                    }

                case .rowStart, .valueExpected:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    if c == 0x22 {
                        i &+= 1
                        state = .string
                    } else if c == 0x6E {  // n
                        i &+= 1
                        literalMatched = 1
                        state = .null
                    } else if Self.isWhitespace(c) {
                        i &+= 1
                    } else if c == 0x5D && state == .rowStart {
                        try endRow(fc: fc, at: base + i, sb: sb, ends: ends, onRow: onRow)
                        i &+= 1
                        state = .afterRow
                    } else {
                        throw fail(Self.badValueReason(c), at: base + i)
                    }

                case .escape:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    let out: UInt8
                    switch c {
                    case 0x22: out = 0x22
                    case 0x5C: out = 0x5C
                    case 0x2F: out = 0x2F
                    case 0x62: out = 0x08
                    case 0x66: out = 0x0C
                    case 0x6E: out = 0x0A
                    case 0x72: out = 0x0D
                    case 0x74: out = 0x09
                    case 0x75:  // u
                        i &+= 1
                        hexCount = 0
                        hexValue = 0
                        state = .unicode
                        continue
                    default:
                        throw fail("invalid escape '\\\(Self.describe(c))' in a string", at: base + i)
                    }
                    if sc &+ 1 > scap {
                        s.count = sc
                        s.reserveBytes(sc + 1)
                        sb = s.bytes
                        scap = s.capacity
                    }
                    sb.storeBytes(of: out, toByteOffset: sc, as: UInt8.self)
                    sc &+= 1
                    i &+= 1
                    state = .string

                case .unicode:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    guard let d = Self.hexDigit(c) else {
                        throw fail("invalid hex digit \(Self.describe(c)) in a \\u escape", at: base + i)
                    }
                    hexValue = hexValue << 4 | UInt32(d)
                    hexCount += 1
                    i &+= 1
                    if hexCount < 4 { continue }
                    let v = hexValue
                    var scalar: UInt32
                    if highSurrogate != 0 {
                        guard v >= 0xDC00 && v <= 0xDFFF else {
                            throw fail("lone high surrogate in a \\u escape", at: base + i - 6)
                        }
                        scalar = 0x10000 + ((highSurrogate - 0xD800) << 10) + (v - 0xDC00)
                        highSurrogate = 0
                    } else if v >= 0xD800 && v <= 0xDBFF {
                        highSurrogate = v
                        state = .lowSurrogateBackslash
                        continue
                    } else if v >= 0xDC00 && v <= 0xDFFF {
                        throw fail("lone low surrogate in a \\u escape", at: base + i - 6)
                    } else {
                        scalar = v
                    }
                    if sc &+ 4 > scap {
                        s.count = sc
                        s.reserveBytes(sc + 4)
                        sb = s.bytes
                        scap = s.capacity
                    }
                    sc &+= Self.storeUTF8(scalar, to: sb + sc)
                    state = .string

                case .lowSurrogateBackslash:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    guard c == 0x5C else { throw fail("lone high surrogate in a \\u escape", at: base + i) }
                    i &+= 1
                    state = .lowSurrogateU

                case .lowSurrogateU:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    guard c == 0x75 else { throw fail("lone high surrogate in a \\u escape", at: base + i) }
                    i &+= 1
                    hexCount = 0
                    hexValue = 0
                    state = .unicode

                case .null:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    let expected: UInt8 = literalMatched == 1 ? 0x75 : 0x6C  // "u" then "l", "l"
                    guard c == expected else {
                        throw fail("invalid literal (expected null); JSON_ARRAY values must be strings or null",
                                   at: base + i)
                    }
                    i &+= 1
                    literalMatched += 1
                    if literalMatched == 4 {
                        if fc == ecap {
                            s.fieldCount = fc
                            s.reserveFields(fc + 1)
                            ends = s.ends
                            ecap = s.endsCapacity
                        }
                        ends[fc] = ~sc
                        fc &+= 1
                        state = .afterValue
                    }

                case .afterRow:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    if c == 0x2C {
                        i &+= 1
                        state = .rowExpected
                    } else if c == 0x5D {
                        i &+= 1
                        state = endDataArray()
                    } else if Self.isWhitespace(c) {
                        i &+= 1
                    } else {
                        throw fail("expected ',' or ']' after a row, found \(Self.describe(c))", at: base + i)
                    }

                case .arrayStart, .rowExpected:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    if c == 0x5B {
                        i &+= 1
                        sc = 0
                        fc = 0
                        state = .rowStart
                    } else if Self.isWhitespace(c) {
                        i &+= 1
                    } else if c == 0x5D && state == .arrayStart {
                        i &+= 1
                        state = endDataArray()
                    } else {
                        throw fail("expected a row (a JSON array), found \(Self.describe(c))", at: base + i)
                    }

                // MARK: Outer structure
                case .bareStart:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    if c == 0x5B {
                        state = .arrayStart
                    } else if !Self.isWhitespace(c) {
                        throw fail("expected a JSON array, found \(Self.describe(c))", at: base + i)
                    }
                    i &+= 1

                case .done:
                    let c = p.load(fromByteOffset: i, as: UInt8.self)
                    guard Self.isWhitespace(c) else {
                        throw fail("unexpected \(Self.describe(c)) after the end of the JSON value", at: base + i)
                    }
                    i &+= 1

                default:
                    // Envelope states: small, byte at a time.
                    state = try envelopeStep(state, p.load(fromByteOffset: i, as: UInt8.self), at: base + i,
                                             advance: &i)
                    if state == .arrayStart { try onRowsBegin(partialMetadata()) }
                }
            }
        } catch {
            if failure == nil {
                failure = (error as? JSONArrayDecodingError)
                    ?? JSONArrayDecodingError(byteOffset: base + i, rowIndex: rowCount,
                                              reason: "row handler threw \(error); decoder stopped")
            }
            throw error
        }
    }

    /// Ends the body after the last byte.
    ///
    /// - Returns: For ``Layout/envelope``, the compact JSON text of the envelope with the `data_array` member
    ///   removed (a valid JSON object, for `JSONDecoder`); for ``Layout/bareArray``, an empty array.
    /// - Throws: ``JSONArrayDecodingError`` with reason `"truncated JSON"` when the body is incomplete, or the
    ///   error the decoder already threw.
    public mutating func finish() throws -> [UInt8] {
        if let failure { throw failure }
        guard state == .done else {
            let e = fail("truncated JSON", at: bytesConsumed)
            failure = e
            throw e
        }
        finished = true
        return layout == .envelope ? metadata : []
    }

    // MARK: - Row helpers

    @inline(__always)
    private mutating func endRow(
        fc: Int, at offset: Int, sb: UnsafeMutableRawPointer, ends: UnsafeMutablePointer<Int>,
        onRow: (borrowing RowView) throws -> Void
    ) throws {
        if let expected = expectedColumnCount, fc != expected {
            throw fail("row has \(fc) value\(fc == 1 ? "" : "s"), expected \(expected)", at: offset)
        }
        if let first = bodyColumnCount {
            if fc != first {
                throw fail("row has \(fc) value\(fc == 1 ? "" : "s"), expected \(first) like the first row",
                           at: offset)
            }
        } else {
            bodyColumnCount = fc
        }
        // A warehouse writes UTF-8 (RFC 8259); bytes that are not would end up in the panel and in delivered JSON.
        // Rows are mostly ASCII: one pass of 8-byte words decides, and only other rows are validated.
        if fc > 0 {
            // A NULL field stores its end as `~end`.
            @inline(__always) func end(_ i: Int) -> Int { ends[i] >= 0 ? ends[i] : ~ends[i] }
            let bytes = UnsafeRawBufferPointer(start: sb, count: end(fc &- 1))
            if !bytes.isASCII, let bad = bytes.firstInvalidUTF8Offset() {
                var value = 0
                while value < fc &- 1 && end(value) <= bad { value &+= 1 }
                throw fail("value \(value + 1) of the row is not valid UTF-8", at: offset)
            }
        }
        let row = RowView(base: UnsafeRawPointer(sb), ends: UnsafePointer(ends), count: fc, isVerbatim: !escapeInRow)
        escapeInRow = false
        try onRow(row)
        rowCount &+= 1
    }

    /// The metadata so far with every open container closed (valid JSON between members).
    private func partialMetadata() -> [UInt8] {
        var out = metadata
        out.reserveCapacity(out.count + containers.count)
        for c in containers.reversed() { out.append(c.isObject ? 0x7D : 0x5D) }
        return out
    }

    private mutating func endDataArray() -> State {
        if layout == .bareArray { return .done }
        skippingDataArray = false
        return .envAfterValue
    }

    private func fail(_ reason: String, at offset: Int) -> JSONArrayDecodingError {
        JSONArrayDecodingError(byteOffset: offset, rowIndex: rowCount, reason: reason)
    }

    // MARK: - Envelope (metadata) states

    /// Processes one byte of the envelope outside `data_array`; sets `i` past what it consumed.
    private mutating func envelopeStep(_ state: State, _ c: UInt8, at offset: Int, advance i: inout Int) throws
        -> State
    {
        switch state {
        case .envStart:
            i += 1
            if c == 0x7B {
                metadata.append(c)
                containers.append(Container(isObject: true, isResult: false))
                return .objectKeyOrEnd
            }
            if Self.isWhitespace(c) { return state }
            throw fail("expected a JSON object, found \(Self.describe(c))", at: offset)

        case .objectKeyOrEnd, .objectKey:
            i += 1
            if Self.isWhitespace(c) { return state }
            if c == 0x22 {
                memberStart = metadata.count
                if containers[containers.count - 1].members > 0 { metadata.append(0x2C) }
                metadata.append(0x22)
                keyStart = metadata.count
                return .key
            }
            if c == 0x7D && state == .objectKeyOrEnd { return try close(c, at: offset) }
            throw fail("expected an object key, found \(Self.describe(c))", at: offset)

        case .key:
            i += 1
            if c == 0x22 {
                let isDataArray = Self.equals(metadata, from: keyStart, "data_array")
                let depth = containers.count
                if isDataArray && (depth == 1 || (depth == 2 && containers[1].isResult)) {
                    metadata.removeSubrange(memberStart...)
                    skippingDataArray = true
                    nextObjectIsResult = false
                } else {
                    metadata.append(0x22)
                    containers[depth - 1].members += 1
                    nextObjectIsResult = depth == 1 && Self.equals(metadata, from: keyStart, "result\"")
                }
                return .colon
            }
            if c < 0x20 { throw fail("unescaped control character 0x\(Self.hex(c)) in a key", at: offset) }
            metadata.append(c)
            return c == 0x5C ? .keyEscape : .key


        case .colon:
            i += 1
            if Self.isWhitespace(c) { return state }
            if c == 0x3A {
                if !skippingDataArray { metadata.append(c) }
                return .envValue
            }
            throw fail("expected ':' after an object key, found \(Self.describe(c))", at: offset)

        case .arrayValueOrEnd, .envValue:
            if Self.isWhitespace(c) {
                i += 1
                return state
            }
            let isResult = nextObjectIsResult
            nextObjectIsResult = false
            if c == 0x5D && state == .arrayValueOrEnd {
                i += 1
                return try close(c, at: offset)
            }
            if skippingDataArray {
                if c == 0x5B {
                    i += 1
                    return .arrayStart
                }
                if c == 0x6E {  // data_array: null
                    literal.removeAll(keepingCapacity: true)
                    return .envLiteral
                }
                throw fail("data_array must be an array, found \(Self.describe(c))", at: offset)
            }
            switch c {
            case 0x22:
                i += 1
                metadata.append(c)
                return .envString
            case 0x7B:
                i += 1
                metadata.append(c)
                containers.append(Container(isObject: true, isResult: isResult))
                return .objectKeyOrEnd
            case 0x5B:
                i += 1
                metadata.append(c)
                containers.append(Container(isObject: false, isResult: false))
                return .arrayValueOrEnd
            case 0x74, 0x66, 0x6E:  // t f n
                literal.removeAll(keepingCapacity: true)
                return .envLiteral
            case 0x2D, 0x30...0x39:
                numberPhase = .start
                return .envNumber
            default:
                throw fail("expected a JSON value, found \(Self.describe(c))", at: offset)
            }

        case .envString:
            i += 1
            if c < 0x20 { throw fail("unescaped control character 0x\(Self.hex(c)) in a string", at: offset) }
            metadata.append(c)
            if c == 0x22 { return .envAfterValue }
            return c == 0x5C ? .envStringEscape : .envString

        case .envStringEscape, .keyEscape:
            i += 1
            let inKey = state == .keyEscape
            switch c {
            case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74:
                metadata.append(c)
                return inKey ? .key : .envString
            case 0x75:
                metadata.append(c)
                hexCount = 0
                hexValue = 0
                envEscapeInKey = inKey
                return .envUnicode
            default:
                throw fail("invalid escape '\\\(Self.describe(c))' in a string", at: offset)
            }

        case .envUnicode:
            i += 1
            guard let d = Self.hexDigit(c) else {
                throw fail("invalid hex digit \(Self.describe(c)) in a \\u escape", at: offset)
            }
            metadata.append(c)
            hexValue = hexValue << 4 | UInt32(d)
            hexCount += 1
            if hexCount < 4 { return state }
            let v = hexValue
            if highSurrogate != 0 {
                guard v >= 0xDC00 && v <= 0xDFFF else {
                    throw fail("lone high surrogate in a \\u escape", at: offset - 5)
                }
                highSurrogate = 0
            } else if v >= 0xD800 && v <= 0xDBFF {
                highSurrogate = v
                return .envLowBackslash
            } else if v >= 0xDC00 && v <= 0xDFFF {
                throw fail("lone low surrogate in a \\u escape", at: offset - 5)
            }
            return envEscapeInKey ? .key : .envString

        case .envLowBackslash:
            i += 1
            guard c == 0x5C else { throw fail("lone high surrogate in a \\u escape", at: offset) }
            metadata.append(c)
            return .envLowU

        case .envLowU:
            i += 1
            guard c == 0x75 else { throw fail("lone high surrogate in a \\u escape", at: offset) }
            metadata.append(c)
            hexCount = 0
            hexValue = 0
            return .envUnicode

        case .envLiteral:
            if c >= 0x61 && c <= 0x7A {
                i += 1
                literal.append(c)
                if literal.count > 5 { throw fail("invalid literal", at: offset) }
                return state
            }
            // The literal ended at this byte; check it and reprocess the byte.
            let ok: Bool
            if skippingDataArray {
                ok = literal.elementsEqual("null".utf8)
            } else {
                ok = literal.elementsEqual("null".utf8) || literal.elementsEqual("true".utf8)
                    || literal.elementsEqual("false".utf8)
            }
            guard ok else { throw fail("invalid literal", at: offset - literal.count) }
            if skippingDataArray { skippingDataArray = false } else { metadata.append(contentsOf: literal) }
            return .envAfterValue

        case .envNumber:
            // RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
            let isDigit = c >= 0x30 && c <= 0x39
            let isExp = c == 0x65 || c == 0x45
            let next: NumberPhase?
            switch numberPhase {
            case .start: next = c == 0x2D ? .minus : c == 0x30 ? .zero : isDigit ? .integer : nil
            case .minus: next = c == 0x30 ? .zero : isDigit ? .integer : nil
            case .zero: next = c == 0x2E ? .point : isExp ? .exponent : isDigit ? nil : .end
            case .integer: next = isDigit ? .integer : c == 0x2E ? .point : isExp ? .exponent : .end
            case .point: next = isDigit ? .fraction : nil
            case .fraction: next = isDigit ? .fraction : isExp ? .exponent : .end
            case .exponent: next = c == 0x2B || c == 0x2D ? .exponentSign : isDigit ? .exponentDigits : nil
            case .exponentSign: next = isDigit ? .exponentDigits : nil
            case .exponentDigits: next = isDigit ? .exponentDigits : .end
            case .end: next = .end
            }
            guard let next else { throw fail("invalid number", at: offset) }
            if next == .end { return .envAfterValue }  // reprocess this byte
            i += 1
            metadata.append(c)
            numberPhase = next
            return state

        case .envAfterValue:
            i += 1
            if Self.isWhitespace(c) { return state }
            if c == 0x2C {
                if containers[containers.count - 1].isObject { return .objectKey }
                metadata.append(c)
                return .envValue
            }
            if c == 0x7D || c == 0x5D { return try close(c, at: offset) }
            throw fail("expected ',' or a closing bracket, found \(Self.describe(c))", at: offset)

        default:
            preconditionFailure("unreachable envelope state \(state)")
        }
    }

    /// Closes the innermost container with `c` (`}` or `]`).
    private mutating func close(_ c: UInt8, at offset: Int) throws -> State {
        let top = containers[containers.count - 1]
        guard top.isObject == (c == 0x7D) else {
            throw fail("mismatched \(Self.describe(c))", at: offset)
        }
        containers.removeLast()
        metadata.append(c)
        return containers.isEmpty ? .done : .envAfterValue
    }

    // MARK: - Byte utilities

    /// High bit set in each byte of `w` that is `"`, `\` or below 0x20. The lowest set bit is always a true match.
    @inline(__always)
    static func specialMask(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let q = w ^ 0x2222_2222_2222_2222
        let b = w ^ 0x5C5C_5C5C_5C5C_5C5C
        let zq = (q &- ones) & ~q
        let zb = (b &- ones) & ~b
        let lt = (w &- 0x2020_2020_2020_2020) & ~w
        return (zq | zb | lt) & highs
    }

    @inline(__always)
    static func isWhitespace(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09
    }

    @inline(__always)
    static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    /// Writes `scalar` as UTF-8 at `dst`; returns the byte count (1–4).
    @inline(__always)
    static func storeUTF8(_ scalar: UInt32, to dst: UnsafeMutableRawPointer) -> Int {
        if scalar < 0x80 {
            dst.storeBytes(of: UInt8(scalar), as: UInt8.self)
            return 1
        } else if scalar < 0x800 {
            dst.storeBytes(of: UInt8(0xC0 | (scalar >> 6)), as: UInt8.self)
            dst.storeBytes(of: UInt8(0x80 | (scalar & 0x3F)), toByteOffset: 1, as: UInt8.self)
            return 2
        } else if scalar < 0x10000 {
            dst.storeBytes(of: UInt8(0xE0 | (scalar >> 12)), as: UInt8.self)
            dst.storeBytes(of: UInt8(0x80 | ((scalar >> 6) & 0x3F)), toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: UInt8(0x80 | (scalar & 0x3F)), toByteOffset: 2, as: UInt8.self)
            return 3
        } else {
            dst.storeBytes(of: UInt8(0xF0 | (scalar >> 18)), as: UInt8.self)
            dst.storeBytes(of: UInt8(0x80 | ((scalar >> 12) & 0x3F)), toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: UInt8(0x80 | ((scalar >> 6) & 0x3F)), toByteOffset: 2, as: UInt8.self)
            dst.storeBytes(of: UInt8(0x80 | (scalar & 0x3F)), toByteOffset: 3, as: UInt8.self)
            return 4
        }
    }

    static func equals(_ bytes: [UInt8], from start: Int, _ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        guard bytes.count - start == n else { return false }
        return text.withUTF8Buffer { t in
            var k = 0
            while k < n {
                if bytes[start + k] != t[k] { return false }
                k += 1
            }
            return true
        }
    }

    static func badValueReason(_ c: UInt8) -> String {
        let suffix = "; JSON_ARRAY values must be strings or null"
        switch c {
        case 0x2D, 0x30...0x39: return "value is a number" + suffix
        case 0x74, 0x66: return "value is a boolean" + suffix
        case 0x7B: return "value is an object" + suffix
        case 0x5B: return "value is an array" + suffix
        case 0x5D, 0x2C: return "expected a value, found \(describe(c))"
        default: return "unexpected \(describe(c)) where a value was expected"
        }
    }

    static func hex(_ c: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(decoding: [digits[Int(c >> 4)], digits[Int(c & 0xF)]], as: UTF8.self)
    }

    static func describe(_ c: UInt8) -> String {
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(hex(c))"
    }
}

// MARK: - Internal types

extension ResultStreamDecoder {
    enum State: UInt8, Sendable {
        // Rows (data_array or bare array).
        case arrayStart, rowExpected, rowStart, valueExpected, afterValue, afterRow
        case string, escape, unicode, lowSurrogateBackslash, lowSurrogateU, null
        // Outer structure.
        case bareStart, done
        case envStart, objectKeyOrEnd, objectKey, key, keyEscape, colon, envValue, arrayValueOrEnd
        case envString, envStringEscape, envUnicode, envLowBackslash, envLowU, envLiteral, envNumber, envAfterValue
    }

    enum NumberPhase: UInt8, Sendable {
        case start, minus, zero, integer, point, fraction, exponent, exponentSign, exponentDigits, end
    }

    struct Container: Sendable {
        var isObject: Bool
        var isResult: Bool
        var members: Int = 0
    }
}

/// The reusable buffers behind ``RowView``: value bytes and per-field end offsets.
///
/// `@unchecked Sendable`: the decoder copies this storage before mutating it unless it holds the only
/// reference (copy-on-write, as `Array` does), so a shared instance is never written.
final class ScratchStorage: @unchecked Sendable {
    var bytes: UnsafeMutableRawPointer
    var capacity: Int = 0
    var count: Int = 0
    var ends: UnsafeMutablePointer<Int>
    var endsCapacity: Int
    var fieldCount: Int = 0

    init(byteCapacity: Int = 4096, fieldCapacity: Int = 64) {
        bytes = UnsafeMutableRawPointer.allocate(byteCount: byteCapacity, alignment: 16)
        capacity = byteCapacity
        ends = UnsafeMutablePointer<Int>.allocate(capacity: fieldCapacity)
        endsCapacity = fieldCapacity
    }

    deinit {
        bytes.deallocate()
        ends.deallocate()
    }

    func copy() -> ScratchStorage {
        let c = ScratchStorage(byteCapacity: max(capacity, 1), fieldCapacity: max(endsCapacity, 1))
        if count > 0 { c.bytes.copyMemory(from: bytes, byteCount: count) }
        c.count = count
        c.ends.update(from: ends, count: fieldCount)
        c.fieldCount = fieldCount
        return c
    }

    func reserveBytes(_ needed: Int) {
        guard needed > capacity else { return }
        var newCap = max(capacity * 2, 64)
        while newCap < needed { newCap *= 2 }
        let nb = UnsafeMutableRawPointer.allocate(byteCount: newCap, alignment: 16)
        if count > 0 { nb.copyMemory(from: bytes, byteCount: count) }
        bytes.deallocate()
        bytes = nb
        capacity = newCap
    }

    func reserveFields(_ needed: Int) {
        guard needed > endsCapacity else { return }
        var newCap = max(endsCapacity * 2, 16)
        while newCap < needed { newCap *= 2 }
        let ne = UnsafeMutablePointer<Int>.allocate(capacity: newCap)
        ne.update(from: ends, count: fieldCount)
        ends.deallocate()
        ends = ne
        endsCapacity = newCap
    }
}
