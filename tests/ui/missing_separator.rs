fn main() {
    let _a = normflow::flow!(maf permute);
}
