//! Typed indices into the simulation's tables: a job of the day, a Friend, a customer. Each is a
//! position in the world's vectors (and in the devices and metrics that parallel them); the types
//! keep a Friend's index from being passed where a job's is meant, which bare `usize`s did not.

use std::fmt;

macro_rules! index {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub usize);

        impl $name {
            /// The entry this index names in `table`.
            pub fn of<T>(self, table: &[T]) -> Option<&T> {
                table.get(self.0)
            }

            /// Every index of a table of `len` entries, in order.
            pub fn all(len: usize) -> impl Iterator<Item = $name> {
                (0..len).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

index! {
    /// A job of the day: its position in `World::jobs` (booking order) and `Metrics::jobs`.
    JobIx
}

index! {
    /// A Friend: their position in `World::friends` and the Friend devices.
    FriendIx
}

index! {
    /// A customer: their position in `World::customers` and the customer devices.
    CustomerIx
}
