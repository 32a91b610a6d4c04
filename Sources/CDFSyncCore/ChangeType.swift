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
        switch bytes.count {
        case 6 where bytes.elementsEqual("insert".utf8): self = .insert
        case 6 where bytes.elementsEqual("delete".utf8): self = .delete
        case 15 where bytes.elementsEqual("update_preimage".utf8): self = .updatePreimage
        case 16 where bytes.elementsEqual("update_postimage".utf8): self = .updatePostimage
        default: return nil
        }
    }
}
