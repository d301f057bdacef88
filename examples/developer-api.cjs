// R SharedObject's developer API: raw segments by id, mapped as ArrayBuffers, for code that
// manages its own layout.
const so = require('@sharedobject/core')

const id = so.allocateSharedMemory(10) // a persistent untyped segment; returns its id
console.log('has it:', so.hasSharedMemory(id)) // true
const buf = so.mapSharedMemory(id) // an ArrayBuffer over it; mapping again returns the same one
new Uint8Array(buf).set([1, 2, 3])
console.log('size:', so.getSharedMemorySize(id) >= 10) // at least 10 bytes
so.unmapSharedMemory(id) // the last unmap detaches buf
so.freeSharedMemory(id) // unmaps here and removes it
console.log('has it after free:', so.hasSharedMemory(id)) // false
