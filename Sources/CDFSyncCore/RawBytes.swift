extension UnsafeMutableRawPointer {
    /// Copies `count` bytes from `source`, which must not overlap them, without calling into the C library
    /// when the run is short.
    ///
    /// The values of a result row are mostly 2–32 bytes, and the hot paths copy each of them several times (the
    /// decoder into its row, the record writer into the record and its shaped values). For runs that short a
    /// call to `memcpy` costs more than the copy: the call, the PLT jump and the size dispatch inside. Up to 32
    /// bytes this loads the first and the last words of the run, which overlap when the run is not a multiple of
    /// the word, and stores them; longer runs go to `copyMemory`.
    @inlinable @inline(__always)
    public func copyShort(from source: UnsafeRawPointer, count n: Int) {
        if n >= 16 {
            if n > 32 {
                copyMemory(from: source, byteCount: n)
                return
            }
            let a = source.loadUnaligned(as: UInt64.self)
            let b = source.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            let c = source.loadUnaligned(fromByteOffset: n &- 16, as: UInt64.self)
            let d = source.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
            storeBytes(of: a, as: UInt64.self)
            storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
            storeBytes(of: c, toByteOffset: n &- 16, as: UInt64.self)
            storeBytes(of: d, toByteOffset: n &- 8, as: UInt64.self)
        } else if n >= 8 {
            let a = source.loadUnaligned(as: UInt64.self)
            let d = source.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
            storeBytes(of: a, as: UInt64.self)
            storeBytes(of: d, toByteOffset: n &- 8, as: UInt64.self)
        } else if n >= 4 {
            let a = source.loadUnaligned(as: UInt32.self)
            let d = source.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
            storeBytes(of: a, as: UInt32.self)
            storeBytes(of: d, toByteOffset: n &- 4, as: UInt32.self)
        } else if n > 0 {
            // 1–3 bytes: the first, the middle and the last (some of them the same byte).
            let a = source.load(as: UInt8.self)
            let m = source.load(fromByteOffset: n &>> 1, as: UInt8.self)
            let z = source.load(fromByteOffset: n &- 1, as: UInt8.self)
            storeBytes(of: a, as: UInt8.self)
            storeBytes(of: m, toByteOffset: n &>> 1, as: UInt8.self)
            storeBytes(of: z, toByteOffset: n &- 1, as: UInt8.self)
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Whether every byte is below 0x80 (checked eight at a time): then the bytes are valid UTF-8, exactly the
    /// bytes a `String` made of them holds.
    @inlinable
    public var isASCII: Bool {
        guard let p = baseAddress else { return true }
        let n = count
        var i = 0
        var high: UInt64 = 0
        while i &+ 8 <= n {
            high |= p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        while i < n {
            high |= UInt64(p.load(fromByteOffset: i, as: UInt8.self))
            i &+= 1
        }
        return high & 0x8080_8080_8080_8080 == 0
    }
}

extension UnsafeRawBufferPointer {
    /// The offset of the first byte that does not belong to a well-formed UTF-8 sequence (overlong forms,
    /// surrogates and code points above U+10FFFF are not well-formed), or nil when every byte does. Allocates
    /// nothing; call it after ``isASCII`` says no (ASCII is valid UTF-8).
    public func firstInvalidUTF8Offset() -> Int? {
        guard let p = baseAddress else { return nil }
        let n = count
        var i = 0
        @inline(__always) func continuation(_ at: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            guard at < n else { return false }
            let b = p.load(fromByteOffset: at, as: UInt8.self)
            return b >= low && b <= high
        }
        while i < n {
            let b0 = p.load(fromByteOffset: i, as: UInt8.self)
            if b0 < 0x80 {
                i &+= 1
            } else if b0 < 0xC2 {
                return i  // a continuation byte, or the lead of an overlong 2-byte form
            } else if b0 < 0xE0 {
                guard continuation(i + 1) else { return i }
                i &+= 2
            } else if b0 < 0xF0 {
                let (low, high): (UInt8, UInt8) = b0 == 0xE0 ? (0xA0, 0xBF) : b0 == 0xED ? (0x80, 0x9F) : (0x80, 0xBF)
                guard continuation(i + 1, low, high), continuation(i + 2) else { return i }
                i &+= 3
            } else if b0 < 0xF5 {
                let (low, high): (UInt8, UInt8) = b0 == 0xF0 ? (0x90, 0xBF) : b0 == 0xF4 ? (0x80, 0x8F) : (0x80, 0xBF)
                guard continuation(i + 1, low, high), continuation(i + 2), continuation(i + 3) else { return i }
                i &+= 4
            } else {
                return i
            }
        }
        return nil
    }
}
