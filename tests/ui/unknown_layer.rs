fn main() {
    let _spec = normflow::flow!(mafx(3) >> permute);
}
