/// An immutable value on the heap: a struct field of this type is one
/// reference, so copying the struct copies a word, not all of the value's
/// fields. Keeps the value witnesses (copy, assign, destroy) of large state
/// machines such as `Election` and `CandidateSession` small: a smaller binary.
final class HeapBox<Value: Sendable>: Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
