fn main() {
    let _a = normflow::flow!(nsf(bins = 2.5));
}
