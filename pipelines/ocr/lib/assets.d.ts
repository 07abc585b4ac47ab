/** Text files a script imports (a package's data, e.g. a dictionary) arrive as their contents. */
declare module '*.txt' {
  const text: string;
  export default text;
}
