import CDFSyncCore
import Testing

/// `copyShort` replaces `memcpy` for the short runs of the hot paths (a value of a result row, a record's key):
/// it must copy exactly the run, whatever its length and alignment, and write nothing beside it.
@Suite("Raw bytes: short copies, ASCII check")
struct RawBytesTests {
    @Test(arguments: [0, 1, 3, 7])
    func everyLengthUpToAndPastTheInlineLimitCopiesExactlyTheRun(offset: Int) {
        let source = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for count in 0...80 {
            var out = [UInt8](repeating: 0xEE, count: 120)
            source.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    (dst.baseAddress! + 16 + offset).copyShort(from: src.baseAddress! + offset, count: count)
                }
            }
            #expect(Array(out[(16 + offset)..<(16 + offset + count)]) == Array(source[offset..<(offset + count)]),
                    "\(count) bytes at offset \(offset)")
            #expect(out[..<(16 + offset)].allSatisfy { $0 == 0xEE }, "wrote before the run (\(count) bytes)")
            #expect(out[(16 + offset + count)...].allSatisfy { $0 == 0xEE }, "wrote past the run (\(count) bytes)")
        }
    }

    /// A passthrough row's key goes to the batch as the result's bytes only when they are ASCII; one byte of 0x80
    /// or above anywhere must send it through `String`, which repairs invalid UTF-8.
    @Test func isASCIISeesAHighByteAtAnyPositionOfAnyLength() {
        for n in 0...40 {
            let ascii = [UInt8]((0..<n).map { UInt8(0x20 + $0 % 0x5F) })
            #expect(ascii.withUnsafeBytes { $0.isASCII }, "\(n) ASCII bytes")
            for at in 0..<n {
                for high: UInt8 in [0x80, 0xC4, 0xFF] {
                    var bytes = ascii
                    bytes[at] = high
                    #expect(!bytes.withUnsafeBytes { $0.isASCII }, "0x\(String(high, radix: 16)) at \(at) of \(n)")
                }
            }
        }
    }
}
