fn main() {
    let _spec = normflow::flow!(maf(3) >> iaf(0));
}
