//! `normflow`: the command-line tool.

mod data_io;

fn main() {
    println!("normflow command-line tool");
}
