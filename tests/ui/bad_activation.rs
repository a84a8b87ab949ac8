fn main() {
    let _a = normflow::flow!(realnvp(activation = rleu));
}
