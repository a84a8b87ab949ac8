fn main() {
    let _spec = normflow::flow!(maf(3, bins = 4));
}
