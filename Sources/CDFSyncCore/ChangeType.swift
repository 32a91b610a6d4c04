#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The kind of a change data feed row, as `_change_type` carries it.
///
/// `insert` and `update_postimage` are applied; `delete` and `update_preimage` are counted and ignored
/// (design §3).
public enum ChangeType: String, Sendable, Hashable, CaseIterable {
    case insert
    case updatePreimage = "update_preimage"
    case updatePostimage = "update_postimage"
    case delete

    /// Whether a row of this kind changes the panel.
    public var isApplied: Bool { self == .insert || self == .updatePostimage }

    /// Parses the `_change_type` text from its UTF-8 bytes without building a `String`.
    public init?(utf8 bytes: UnsafeRawBufferPointer) {
        // One memcmp against a literal (read once per row: the generic `elementsEqual` over `String.UTF8View`
        // was 3 % of a replay's reading thread).
        @inline(__always) func equals(_ literal: StaticString) -> Bool {
            memcmp(bytes.baseAddress!, literal.utf8Start, literal.utf8CodeUnitCount) == 0
        }
        switch bytes.count {
        case 6 where equals("insert"): self = .insert
        case 6 where equals("delete"): self = .delete
        case 15 where equals("update_preimage"): self = .updatePreimage
        case 16 where equals("update_postimage"): self = .updatePostimage
        default: return nil
        }
    }
}
